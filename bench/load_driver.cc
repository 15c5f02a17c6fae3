// The ingest benchmark's HTTP load driver: keeps N keep-alive HTTP/1.1 connections to a loopback server busy
// with pre-generated, pre-signed request bodies, one request in flight per connection, and reports
// throughput, latency, non-2xx answers and the CPU time that the measured server processes spent meanwhile.
//
// It only ever connects to 127.0.0.1, and every run is bounded: by the number of requests in the file (or
// --max-requests) and by --duration seconds, after which it stops sending and waits at most --grace seconds
// for the answers in flight. It never retries a request: a failed request counts as an error.
//
// Request file (made by bench/sign_requests.py), one request per line:
//   <hex signature> TAB <messages in the body> TAB <messageIds not seen on earlier lines> TAB <body>
// Bodies are compact JSON, which never contains a raw tab or newline.
//
// Output: a human summary on stderr and one JSON object on stdout (read by bench/ingest.sh).
//
// --tls CAFILE speaks HTTPS (verifying the server against CAFILE): every connection shakes hands before the
// clock starts, and again (a full handshake, no resumption) whenever it is opened anew. --close asks the server
// to close after every answer, so that every request pays for a new connection (and, with --tls, a handshake).
//
// Build: g++ -O2 -std=c++17 -o load_driver load_driver.cc -lssl -lcrypto
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct Options {
    int port = 0;
    std::string path = "/v1/webhook";
    std::string request_file;
    int connections = 1;
    long max_requests = -1;  // -1: every request of the file
    double duration_s = 60;
    double grace_s = 30;
    double hold_s = 0;       // keep the connections open (idle) this long after the run
    std::string ready_file;  // created when the connections are idle and held
    std::vector<std::pair<std::string, int>> cpu_roots;  // name=pid: process trees whose CPU time is reported
    int show_errors = 5;
    int sample_pid = 0;  // sample /proc/<pid>/syscall every millisecond: where the server's wall time goes
    std::string tls_ca;  // HTTPS, trusting this CA file
    bool close_each = false;  // Connection: close on every request
};

struct Request {
    std::string head;
    std::string_view body;
    long messages = 0;
    long new_unique = 0;
};

double now_s() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

[[noreturn]] void die(const std::string &message) {
    fprintf(stderr, "load_driver: %s\n", message.c_str());
    exit(2);
}

// ---------------------------------------------------------------------------------------------------------
// CPU time of process trees, from /proc: utime + stime of every live process of the tree, plus cutime +
// cstime (the reaped children's share) of each, so that a backend exiting during the run still counts once.
// ---------------------------------------------------------------------------------------------------------
struct ProcStat {
    int ppid = 0;
    unsigned long long ticks_self = 0, ticks_children = 0;
};

bool read_proc_stat(int pid, ProcStat *out) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *file = fopen(path, "r");
    if (file == nullptr) {
        return false;
    }
    char buffer[1024];
    size_t length = fread(buffer, 1, sizeof buffer - 1, file);
    fclose(file);
    buffer[length] = '\0';
    // The command name (field 2) may contain spaces and parentheses: fields resume after the last ')'.
    const char *rest = strrchr(buffer, ')');
    if (rest == nullptr) {
        return false;
    }
    rest += 2;
    // Fields from 3 on: state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime
    // cutime cstime.
    char state;
    int ppid;
    unsigned long long skip, utime, stime;
    long long cutime, cstime;
    if (sscanf(rest, "%c %d %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %lld %lld", &state, &ppid,
               &skip, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &utime, &stime, &cutime,
               &cstime) != 15) {
        return false;
    }
    out->ppid = ppid;
    out->ticks_self = utime + stime;
    out->ticks_children = static_cast<unsigned long long>(cutime + cstime);
    return true;
}

std::map<int, ProcStat> all_processes() {
    std::map<int, ProcStat> processes;
    DIR *proc = opendir("/proc");
    if (proc == nullptr) {
        return processes;
    }
    while (struct dirent *entry = readdir(proc)) {
        char *end;
        long pid = strtol(entry->d_name, &end, 10);
        if (*end != '\0' || pid <= 0) {
            continue;
        }
        ProcStat stat;
        if (read_proc_stat(static_cast<int>(pid), &stat)) {
            processes[static_cast<int>(pid)] = stat;
        }
    }
    closedir(proc);
    return processes;
}

// Seconds of CPU of the tree rooted at each requested pid.
std::vector<double> tree_cpu_seconds(const std::vector<std::pair<std::string, int>> &roots) {
    std::vector<double> result;
    if (roots.empty()) {
        return result;
    }
    const std::map<int, ProcStat> processes = all_processes();
    std::multimap<int, int> children;
    for (const auto &[pid, stat] : processes) {
        children.emplace(stat.ppid, pid);
    }
    const double ticks_per_second = static_cast<double>(sysconf(_SC_CLK_TCK));
    for (const auto &[name, root] : roots) {
        unsigned long long ticks = 0;
        std::vector<int> stack{root};
        std::set<int> seen;
        while (!stack.empty()) {
            int pid = stack.back();
            stack.pop_back();
            if (!seen.insert(pid).second) {
                continue;
            }
            auto found = processes.find(pid);
            if (found == processes.end()) {
                continue;
            }
            ticks += found->second.ticks_self + found->second.ticks_children;
            auto range = children.equal_range(pid);
            for (auto it = range.first; it != range.second; ++it) {
                stack.push_back(it->second);
            }
        }
        result.push_back(static_cast<double>(ticks) / ticks_per_second);
    }
    return result;
}

// What a process is doing right now, from /proc/<pid>/syscall: "running", or the system call it is blocked in
// (x86-64 numbers), so that sampling it shows where its wall time goes, on and off the CPU.
std::string current_syscall(int pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/syscall", pid);
    FILE *file = fopen(path, "r");
    if (file == nullptr) {
        return "unreadable";
    }
    char buffer[64] = "";
    const bool ok = fgets(buffer, sizeof buffer, file) != nullptr;
    fclose(file);
    if (!ok) {
        return "unreadable";
    }
    if (strncmp(buffer, "running", 7) == 0) {
        return "running";
    }
    const long number = strtol(buffer, nullptr, 10);
    switch (number) {
        case 0:
            return "read";
        case 1:
            return "write";
        case 7:
            return "poll";
        case 17:
            return "pread64";
        case 18:
            return "pwrite64";
        case 20:
            return "writev";
        case 23:
            return "select";
        case 44:
            return "sendto";
        case 45:
            return "recvfrom";
        case 74:
            return "fsync";
        case 75:
            return "fdatasync";
        case 202:
            return "futex";
        case 232:
            return "epoll_wait";
        case 233:
            return "epoll_ctl";
        case 281:
            return "epoll_pwait";
        case 285:
            return "fallocate";
        case -1:
            return "blocked (no syscall)";
        default:
            return "syscall " + std::to_string(number);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------------------
std::string read_file(const std::string &path) {
    FILE *file = fopen(path.c_str(), "rb");
    if (file == nullptr) {
        die("cannot open " + path + ": " + strerror(errno));
    }
    std::string data;
    char buffer[1 << 16];
    size_t length;
    while ((length = fread(buffer, 1, sizeof buffer, file)) > 0) {
        data.append(buffer, length);
    }
    fclose(file);
    return data;
}

std::vector<Request> parse_requests(const std::string &data, const Options &options) {
    std::vector<Request> requests;
    size_t position = 0;
    while (position < data.size()) {
        size_t end = data.find('\n', position);
        if (end == std::string::npos) {
            end = data.size();
        }
        std::string_view line(data.data() + position, end - position);
        position = end + 1;
        if (line.empty()) {
            continue;
        }
        size_t tab1 = line.find('\t');
        size_t tab2 = tab1 == std::string_view::npos ? tab1 : line.find('\t', tab1 + 1);
        size_t tab3 = tab2 == std::string_view::npos ? tab2 : line.find('\t', tab2 + 1);
        if (tab3 == std::string_view::npos) {
            die("malformed line " + std::to_string(requests.size() + 1) + " in " + options.request_file);
        }
        Request request;
        std::string signature(line.substr(0, tab1));
        request.messages = atol(std::string(line.substr(tab1 + 1, tab2 - tab1 - 1)).c_str());
        request.new_unique = atol(std::string(line.substr(tab2 + 1, tab3 - tab2 - 1)).c_str());
        request.body = line.substr(tab3 + 1);
        request.head = "POST " + options.path +
                       " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(options.port) +
                       "\r\nUser-Agent: Segment (Actions)\r\nContent-Type: application/json\r\n";
        if (!signature.empty()) {
            request.head += "X-Signature: " + signature + "\r\n";
        }
        if (options.close_each) {
            request.head += "Connection: close\r\n";
        }
        request.head += "Content-Length: " + std::to_string(request.body.size()) + "\r\n\r\n";
        requests.push_back(std::move(request));
        if (options.max_requests >= 0 && static_cast<long>(requests.size()) >= options.max_requests) {
            break;
        }
    }
    return requests;
}

// ---------------------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------------------
enum class State { Connecting, Idle, Sending, Receiving, Closed };

struct Connection {
    int fd = -1;
    SSL *ssl = nullptr;
    State state = State::Connecting;
    long request = -1;  // index of the request in flight
    size_t sent = 0;    // bytes of head + body written
    double started = 0;
    std::string input;
};

struct Totals {
    long completed = 0, messages = 0, expected_unique = 0, non_2xx = 0, errors = 0, accepted = 0,
         duplicates = 0, rejected = 0, reconnects = 0, handshakes = 0;
    std::map<int, long> statuses;
    std::vector<uint32_t> latencies_us;
    int errors_shown = 0;
};

int open_connection(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        die(std::string("socket: ") + strerror(errno));
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in address {};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // loopback only, always
    if (connect(fd, reinterpret_cast<struct sockaddr *>(&address), sizeof address) != 0 &&
        errno != EINPROGRESS) {
        die(std::string("connect to 127.0.0.1:") + std::to_string(port) + ": " + strerror(errno));
    }
    return fd;
}

long header_value(std::string_view head, const char *name) {
    // Case-insensitive search for "\r\n<name>:".
    const size_t name_length = strlen(name);
    for (size_t i = 0; i + name_length + 3 <= head.size(); ++i) {
        if (head[i] != '\r' || head[i + 1] != '\n') {
            continue;
        }
        if (strncasecmp(head.data() + i + 2, name, name_length) == 0 && head[i + 2 + name_length] == ':') {
            return atol(std::string(head.substr(i + 3 + name_length, 24)).c_str());
        }
    }
    return -1;
}

bool header_contains(std::string_view head, const char *name, const char *value) {
    const size_t name_length = strlen(name);
    for (size_t i = 0; i + name_length + 3 <= head.size(); ++i) {
        if (head[i] == '\r' && head[i + 1] == '\n' &&
            strncasecmp(head.data() + i + 2, name, name_length) == 0 && head[i + 2 + name_length] == ':') {
            size_t end = head.find("\r\n", i + 2);
            std::string line(
                head.substr(i + 2, end == std::string_view::npos ? std::string_view::npos : end - i - 2));
            for (char &c : line) {
                c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
            }
            return line.find(value) != std::string::npos;
        }
    }
    return false;
}

long json_number(std::string_view body, const char *key) {
    std::string pattern = std::string("\"") + key + "\":";
    size_t at = body.find(pattern);
    if (at == std::string_view::npos) {
        return 0;
    }
    return atol(std::string(body.substr(at + pattern.size(), 24)).c_str());
}

class Driver {
  public:
    Driver(const Options &options, std::vector<Request> &requests) : options_(options), requests_(requests) {
        if (!options_.tls_ca.empty()) {
            tls_ = SSL_CTX_new(TLS_client_method());
            if (tls_ == nullptr || SSL_CTX_load_verify_locations(tls_, options_.tls_ca.c_str(), nullptr) != 1) {
                die("cannot load the CA file " + options_.tls_ca);
            }
            SSL_CTX_set_verify(tls_, SSL_VERIFY_PEER, nullptr);
            SSL_CTX_set_mode(tls_, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
            const unsigned char alpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
            SSL_CTX_set_alpn_protos(tls_, alpn, sizeof alpn);
        }
    }

    int run() {
        epoll_ = epoll_create1(EPOLL_CLOEXEC);
        if (epoll_ < 0) {
            die(std::string("epoll_create1: ") + strerror(errno));
        }
        connections_.resize(static_cast<size_t>(options_.connections));
        for (size_t i = 0; i < connections_.size(); ++i) {
            connections_[i].fd = open_connection(options_.port);
            watch(i, EPOLLOUT, EPOLL_CTL_ADD);
        }
        // Every connection is established before the clock starts.
        const double connect_deadline = now_s() + 30;
        size_t connected = 0;
        std::vector<struct epoll_event> events(1024);
        while (connected < connections_.size()) {
            if (now_s() > connect_deadline) {
                die("could not open " + std::to_string(options_.connections) + " connections within 30 s (" +
                    std::to_string(connected) + " open)");
            }
            int count = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 1000);
            for (int e = 0; e < count; ++e) {
                Connection &connection = connections_[events[e].data.u64];
                if (connection.state != State::Connecting) {
                    continue;
                }
                int error = 0;
                socklen_t length = sizeof error;
                getsockopt(connection.fd, SOL_SOCKET, SO_ERROR, &error, &length);
                if (error != 0) {
                    die(std::string("connect to 127.0.0.1:") + std::to_string(options_.port) + ": " +
                        strerror(error));
                }
                connection.state = State::Idle;
                watch(events[e].data.u64, EPOLLIN, EPOLL_CTL_MOD);
                ++connected;
            }
        }

        if (tls_) {
            for (Connection &connection : connections_) {
                shake_hands(connection);
            }
        }

        cpu_before_ = tree_cpu_seconds(options_.cpu_roots);
        getrusage(RUSAGE_SELF, &usage_before_);
        started_ = now_s();
        const double stop_sending = started_ + options_.duration_s;
        for (size_t i = 0; i < connections_.size(); ++i) {
            start_next(i);
        }
        double grace_deadline = -1;
        while (in_flight_ > 0) {
            const double now = now_s();
            if (now >= stop_sending && grace_deadline < 0) {
                stopped_ = true;  // no new requests; the ones in flight get --grace seconds to be answered
                grace_deadline = now + options_.grace_s;
            }
            if (grace_deadline > 0 && now >= grace_deadline) {
                fprintf(stderr, "load_driver: %ld requests still unanswered %.0f s after the time limit\n",
                        in_flight_, options_.grace_s);
                totals_.errors += in_flight_;
                break;
            }
            int count = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()),
                                   options_.sample_pid ? 1 : 100);
            if (count < 0 && errno != EINTR) {
                die(std::string("epoll_wait: ") + strerror(errno));
            }
            if (options_.sample_pid && now_s() >= next_sample_) {
                syscall_samples_[current_syscall(options_.sample_pid)]++;
                next_sample_ = now_s() + 0.001;
            }
            for (int e = 0; e < count; ++e) {
                handle(events[e].data.u64, events[e].events);
            }
        }
        finished_ = now_s();
        cpu_after_ = tree_cpu_seconds(options_.cpu_roots);
        getrusage(RUSAGE_SELF, &usage_after_);

        if (options_.hold_s > 0) {
            hold();
        }
        for (Connection &connection : connections_) {
            if (connection.fd >= 0) {
                close_connection(connection);
            }
        }
        report();
        return 0;
    }

  private:
    // A blocking handshake on a connected socket, which is left non-blocking.
    void shake_hands(Connection &connection) {
        fcntl(connection.fd, F_SETFL, fcntl(connection.fd, F_GETFL) & ~O_NONBLOCK);
        connection.ssl = SSL_new(tls_);
        SSL_set_fd(connection.ssl, connection.fd);
        SSL_set1_host(connection.ssl, "127.0.0.1");
        if (SSL_connect(connection.ssl) != 1) {
            char reason[256];
            ERR_error_string_n(ERR_get_error(), reason, sizeof reason);
            die(std::string("TLS handshake with 127.0.0.1:") + std::to_string(options_.port) + ": " + reason);
        }
        ++totals_.handshakes;
        fcntl(connection.fd, F_SETFL, fcntl(connection.fd, F_GETFL) | O_NONBLOCK);
    }

    void close_connection(Connection &connection) {
        if (connection.ssl != nullptr) {
            SSL_free(connection.ssl);
            connection.ssl = nullptr;
        }
        close(connection.fd);
    }

    // writev() or SSL_write() of the rest of the request; -1 with errno EAGAIN when the socket must wait.
    ssize_t write_request(Connection &connection, const Request &request, struct iovec *parts, int part_count) {
        if (connection.ssl == nullptr) {
            return writev(connection.fd, parts, part_count);
        }
        std::string rest;
        for (int i = 0; i < part_count; ++i) {
            rest.append(static_cast<const char *>(parts[i].iov_base), parts[i].iov_len);
        }
        (void)request;
        const int written = SSL_write(connection.ssl, rest.data(), static_cast<int>(rest.size()));
        if (written > 0) {
            return written;
        }
        const int error = SSL_get_error(connection.ssl, written);
        errno = (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) ? EAGAIN : EPIPE;
        return -1;
    }

    // read() or SSL_read(): a count, 0 at the end, -1 with errno.
    ssize_t read_answer(Connection &connection, char *buffer, size_t size) {
        if (connection.ssl == nullptr) {
            return read(connection.fd, buffer, size);
        }
        const int count = SSL_read(connection.ssl, buffer, static_cast<int>(size));
        if (count > 0) {
            return count;
        }
        const int error = SSL_get_error(connection.ssl, count);
        if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
            errno = EAGAIN;
            return -1;
        }
        if (error == SSL_ERROR_ZERO_RETURN || (error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
            return 0;
        }
        errno = ECONNRESET;
        return -1;
    }

    void watch(size_t index, uint32_t events, int operation) {
        struct epoll_event event {};
        event.events = events;
        event.data.u64 = index;
        if (epoll_ctl(epoll_, operation, connections_[index].fd, &event) != 0) {
            die(std::string("epoll_ctl: ") + strerror(errno));
        }
    }

    void start_next(size_t index) {
        Connection &connection = connections_[index];
        if (stopped_ || next_ >= static_cast<long>(requests_.size()) ||
            now_s() >= started_ + options_.duration_s) {
            stopped_ = true;
            connection.state = State::Idle;
            return;
        }
        connection.request = next_++;
        connection.sent = 0;
        connection.input.clear();
        connection.started = now_s();
        connection.state = State::Sending;
        ++in_flight_;
        send_more(index);
    }

    void send_more(size_t index) {
        Connection &connection = connections_[index];
        const Request &request = requests_[static_cast<size_t>(connection.request)];
        const size_t total = request.head.size() + request.body.size();
        while (connection.sent < total) {
            struct iovec parts[2];
            int part_count = 0;
            if (connection.sent < request.head.size()) {
                parts[part_count].iov_base = const_cast<char *>(request.head.data() + connection.sent);
                parts[part_count].iov_len = request.head.size() - connection.sent;
                ++part_count;
                parts[part_count].iov_base = const_cast<char *>(request.body.data());
                parts[part_count].iov_len = request.body.size();
                ++part_count;
            } else {
                const size_t offset = connection.sent - request.head.size();
                parts[0].iov_base = const_cast<char *>(request.body.data() + offset);
                parts[0].iov_len = request.body.size() - offset;
                part_count = 1;
            }
            ssize_t written = write_request(connection, request, parts, part_count);
            if (written < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    watch(index, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
                    return;
                }
                if (errno == EINTR) {
                    continue;
                }
                fail(index, std::string("write: ") + strerror(errno));
                return;
            }
            connection.sent += static_cast<size_t>(written);
        }
        if (connection.state == State::Sending) {
            connection.state = State::Receiving;
            watch(index, EPOLLIN, EPOLL_CTL_MOD);
        }
    }

    void handle(size_t index, uint32_t events) {
        Connection &connection = connections_[index];
        if ((events & EPOLLOUT) && connection.state == State::Sending) {
            send_more(index);
        }
        if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
            char buffer[65536];
            for (;;) {
                ssize_t length = read_answer(connection, buffer, sizeof buffer);
                if (length > 0) {
                    connection.input.append(buffer, static_cast<size_t>(length));
                    continue;
                }
                if (length == 0) {
                    if (connection.state == State::Sending || connection.state == State::Receiving) {
                        if (!try_complete(index, true)) {
                            fail(index, "the server closed the connection before answering");
                        }
                    } else {
                        reconnect(index);
                    }
                    return;
                }
                if (errno == EINTR) {
                    continue;
                }
                if (errno != EAGAIN && errno != EWOULDBLOCK) {
                    fail(index, std::string("read: ") + strerror(errno));
                    return;
                }
                break;
            }
            try_complete(index, false);
        }
    }

    // Completes the request in flight when its whole answer has arrived; returns whether it did. After the
    // answer the connection carries the next request, or is opened anew if the server closed it.
    bool try_complete(size_t index, bool peer_closed) {
        Connection &connection = connections_[index];
        if (connection.state != State::Receiving && connection.state != State::Sending) {
            return false;
        }
        const size_t head_end = connection.input.find("\r\n\r\n");
        if (head_end == std::string::npos) {
            return false;
        }
        std::string_view head(connection.input.data(), head_end + 2);
        const long content_length = header_value(head, "Content-Length");
        if (content_length < 0) {
            fail(index, "answer without Content-Length: " + std::string(head));
            return true;
        }
        if (connection.input.size() < head_end + 4 + static_cast<size_t>(content_length)) {
            return false;
        }
        std::string_view body(connection.input.data() + head_end + 4, static_cast<size_t>(content_length));
        int status = 0;
        if (head.size() > 12 && head.substr(0, 5) == "HTTP/") {
            status = atoi(std::string(head.substr(9, 3)).c_str());
        }
        const double latency = now_s() - connection.started;
        const Request &request = requests_[static_cast<size_t>(connection.request)];
        totals_.statuses[status]++;
        totals_.completed++;
        totals_.latencies_us.push_back(static_cast<uint32_t>(std::min(latency * 1e6, 4e9)));
        if (status >= 200 && status < 300) {
            totals_.messages += request.messages;
            totals_.expected_unique += request.new_unique;
            totals_.accepted += json_number(body, "accepted");
            totals_.duplicates += json_number(body, "duplicates");
            totals_.rejected += json_number(body, "rejected");
        } else {
            totals_.non_2xx++;
            if (totals_.errors_shown < options_.show_errors) {
                totals_.errors_shown++;
                fprintf(stderr, "load_driver: request %ld answered %d: %.*s\n", connection.request, status,
                        static_cast<int>(std::min<size_t>(body.size(), 400)), body.data());
            }
        }
        const bool close_after = header_contains(head, "Connection", "close");
        connection.input.erase(0, head_end + 4 + static_cast<size_t>(content_length));
        connection.state = State::Idle;
        connection.request = -1;
        --in_flight_;
        if (close_after || peer_closed) {
            reconnect(index);
        } else {
            start_next(index);
        }
        return true;
    }

    void fail(size_t index, const std::string &why) {
        Connection &connection = connections_[index];
        totals_.errors++;
        if (totals_.errors_shown < options_.show_errors) {
            totals_.errors_shown++;
            fprintf(stderr, "load_driver: request %ld failed: %s\n", connection.request, why.c_str());
        }
        if (connection.state == State::Sending || connection.state == State::Receiving) {
            --in_flight_;
        }
        connection.state = State::Idle;
        reconnect(index);
    }

    // The server closed the connection: open a new one (synchronously; it is loopback) and go on.
    void reconnect(size_t index) {
        Connection &connection = connections_[index];
        close_connection(connection);
        totals_.reconnects++;
        connection.input.clear();
        if (stopped_) {
            connection.fd = -1;
            connection.state = State::Closed;
            return;
        }
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct sockaddr_in address {};
        address.sin_family = AF_INET;
        address.sin_port = htons(static_cast<uint16_t>(options_.port));
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, reinterpret_cast<struct sockaddr *>(&address), sizeof address) != 0) {
            die(std::string("reconnect: ") + strerror(errno));
        }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        connection.fd = fd;
        if (tls_) {
            shake_hands(connection);
        }
        connection.state = State::Idle;
        watch(index, EPOLLIN, EPOLL_CTL_ADD);
        start_next(index);
    }

    // Keeps every connection open and idle; answers nothing, sends nothing. Reports connections the server
    // closed meanwhile.
    void hold() {
        if (!options_.ready_file.empty()) {
            FILE *file = fopen(options_.ready_file.c_str(), "w");
            if (file != nullptr) {
                fprintf(file, "%d\n", options_.connections);
                fclose(file);
            }
        }
        const double until = now_s() + options_.hold_s;
        std::vector<struct epoll_event> events(1024);
        while (now_s() < until) {
            int count = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 200);
            for (int e = 0; e < count; ++e) {
                Connection &connection = connections_[events[e].data.u64];
                char buffer[4096];
                if (connection.fd >= 0 && read(connection.fd, buffer, sizeof buffer) == 0) {
                    epoll_ctl(epoll_, EPOLL_CTL_DEL, connection.fd, nullptr);
                    close_connection(connection);
                    connection.fd = -1;
                    closed_while_held_++;
                }
            }
        }
    }

    void report() {
        std::vector<uint32_t> &latencies = totals_.latencies_us;
        std::sort(latencies.begin(), latencies.end());
        auto percentile = [&latencies](double p) -> double {
            if (latencies.empty()) {
                return 0;
            }
            size_t rank = static_cast<size_t>(p * static_cast<double>(latencies.size()));
            return latencies[std::min(rank, latencies.size() - 1)] / 1000.0;
        };
        const double elapsed = finished_ - started_;
        const double events_per_s = elapsed > 0 ? totals_.messages / elapsed : 0;
        const double requests_per_s = elapsed > 0 ? totals_.completed / elapsed : 0;
        auto seconds = [](const struct timeval &tv) { return double(tv.tv_sec) + double(tv.tv_usec) / 1e6; };
        const double driver_cpu = seconds(usage_after_.ru_utime) - seconds(usage_before_.ru_utime) +
                                  seconds(usage_after_.ru_stime) - seconds(usage_before_.ru_stime);

        fprintf(stderr,
                "load_driver: %d connections, %ld requests (%ld messages) in %.3f s: %.0f events/s, %.0f "
                "requests/s; latency p50 %.2f ms, p99 %.2f ms, max %.2f ms; non-2xx %ld, errors %ld\n",
                options_.connections, totals_.completed, totals_.messages, elapsed, events_per_s,
                requests_per_s, percentile(0.50), percentile(0.99),
                latencies.empty() ? 0.0 : latencies.back() / 1000.0, totals_.non_2xx, totals_.errors);

        printf(
            "{\"connections\":%d,\"requests\":%ld,\"messages\":%ld,\"expected_unique\":%ld,\"elapsed_s\":%."
            "6f,"
            "\"events_per_s\":%.1f,\"requests_per_s\":%.1f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,"
            "\"max_ms\":%.3f,\"non_2xx\":%ld,\"errors\":%ld,\"accepted\":%ld,\"duplicates\":%ld,"
            "\"rejected\":%ld,\"reconnects\":%ld,\"closed_while_held\":%ld,\"driver_cpu_s\":%.3f,",
            options_.connections, totals_.completed, totals_.messages, totals_.expected_unique, elapsed,
            events_per_s, requests_per_s, percentile(0.50), percentile(0.90), percentile(0.99),
            latencies.empty() ? 0.0 : latencies.back() / 1000.0, totals_.non_2xx, totals_.errors,
            totals_.accepted, totals_.duplicates, totals_.rejected, totals_.reconnects, closed_while_held_,
            driver_cpu);
        printf("\"handshakes\":%ld,", totals_.handshakes);
        printf("\"statuses\":{");
        bool first = true;
        for (const auto &[status, count] : totals_.statuses) {
            printf("%s\"%d\":%ld", first ? "" : ",", status, count);
            first = false;
        }
        printf("},\"syscall_samples\":{");
        first = true;
        for (const auto &[name, count] : syscall_samples_) {
            printf("%s\"%s\":%ld", first ? "" : ",", name.c_str(), count);
            first = false;
        }
        printf("},\"cpu_s\":{");
        for (size_t i = 0; i < options_.cpu_roots.size(); ++i) {
            printf("%s\"%s\":%.3f", i == 0 ? "" : ",", options_.cpu_roots[i].first.c_str(),
                   cpu_after_[i] - cpu_before_[i]);
        }
        printf("}}\n");
        fflush(stdout);
    }

    const Options &options_;
    std::vector<Request> &requests_;
    std::vector<Connection> connections_;
    int epoll_ = -1;
    long next_ = 0;
    long in_flight_ = 0;
    long closed_while_held_ = 0;
    bool stopped_ = false;
    double started_ = 0, finished_ = 0;
    std::vector<double> cpu_before_, cpu_after_;
    struct rusage usage_before_ {
    }, usage_after_{};
    Totals totals_;
    double next_sample_ = 0;
    std::map<std::string, long> syscall_samples_;
    SSL_CTX *tls_ = nullptr;
};

void usage() {
    fprintf(stderr,
            "usage: load_driver --port P --requests FILE [--path /v1/webhook?writeKey=K] [--connections N]\n"
            "                   [--max-requests N] [--duration S] [--grace S] [--hold S --ready-file F]\n"
            "                   [--cpu NAME=PID]... [--sample-syscalls PID] [--show-errors N]\n"
            "                   [--tls CAFILE] [--close]\n");
    exit(2);
}

}  // namespace

int main(int argc, char **argv) {
    Options options;
    for (int i = 1; i < argc; ++i) {
        std::string argument = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                usage();
            }
            return argv[++i];
        };
        if (argument == "--port") {
            options.port = atoi(value().c_str());
        } else if (argument == "--path") {
            options.path = value();
        } else if (argument == "--requests") {
            options.request_file = value();
        } else if (argument == "--connections") {
            options.connections = atoi(value().c_str());
        } else if (argument == "--max-requests") {
            options.max_requests = atol(value().c_str());
        } else if (argument == "--duration") {
            options.duration_s = atof(value().c_str());
        } else if (argument == "--grace") {
            options.grace_s = atof(value().c_str());
        } else if (argument == "--hold") {
            options.hold_s = atof(value().c_str());
        } else if (argument == "--ready-file") {
            options.ready_file = value();
        } else if (argument == "--cpu") {
            std::string spec = value();
            size_t equals = spec.find('=');
            if (equals == std::string::npos) {
                usage();
            }
            options.cpu_roots.emplace_back(spec.substr(0, equals), atoi(spec.c_str() + equals + 1));
        } else if (argument == "--sample-syscalls") {
            options.sample_pid = atoi(value().c_str());
        } else if (argument == "--tls") {
            options.tls_ca = value();
        } else if (argument == "--close") {
            options.close_each = true;
        } else if (argument == "--show-errors") {
            options.show_errors = atoi(value().c_str());
        } else {
            usage();
        }
    }
    if (options.port <= 0 || options.request_file.empty() || options.connections <= 0 ||
        options.duration_s <= 0) {
        usage();
    }
    signal(SIGPIPE, SIG_IGN);  // a closed connection is an error to count, not a reason to die
    // Hundreds of connections need more descriptors than a default soft limit may allow.
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
    const std::string data = read_file(options.request_file);
    std::vector<Request> requests = parse_requests(data, options);
    if (requests.empty()) {
        die("no requests in " + options.request_file);
    }
    Driver driver(options, requests);
    return driver.run();
}
