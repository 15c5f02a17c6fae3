// Unit tests of what src/core/http_server bounds, over real loopback sockets: requests refused from their
// head (head_check, max_buffered_bytes) before their body is read, the byte accounting, and a client that
// pipelines requests and never reads its answers.
#include "core/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/webhook.h"
#include "http_server_test_util.h"

namespace {

using namespace http_server_test;
using segment::HttpResponse;
using segment::HttpServer;
using segment::HttpServerOptions;
using segment::ReadyRequest;

std::string post_head(const std::string &target, size_t content_length, const std::string &headers = "") {
    return "POST " + target + " HTTP/1.1\r\nHost: x\r\n" + headers +
           "Content-Length: " + std::to_string(content_length) + "\r\n\r\n";
}

// A server whose head_check is the webhook's own, over a directory that knows one write key.
class HeadCheckTest : public ::testing::Test {
  protected:
    void SetUp() override {
        std::vector<segment::SourceInfo> sources(1);
        sources[0].id = 1;
        sources[0].write_key = "open-key";
        directory.replace(std::move(sources));
        context.sources = &directory;
        options = loopback_options();
        options.parser_limits.max_body_bytes = 8 * 1024 * 1024;
        options.head_check = [this](const segment::HttpRequest &request) {
            ++calls;
            return segment::check_request_head(request, context);
        };
    }

    segment::SourceDirectory directory;
    segment::WebhookContext context;
    HttpServerOptions options;
    int calls = 0;
};

TEST_F(HeadCheckTest, UnknownKeyIsRefusedBeforeContinueAndBeforeTheBody) {
    HttpServer server(options);
    const int client = connect_to(server.port());
    send_all(client, post_head("/v1/webhook?writeKey=nope", 5000000, "Expect: 100-continue\r\n"));
    const std::string answer = read_available(client, server);  // ends when the server closes
    EXPECT_EQ(answer.rfind("HTTP/1.1 401 ", 0), 0u) << answer;
    EXPECT_EQ(answer.find("100 Continue"), std::string::npos) << answer;
    EXPECT_NE(answer.find("\"code\":\"invalid_write_key\""), std::string::npos);
    EXPECT_NE(answer.find("Connection: close"), std::string::npos);
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(server.counters().refused_by_head_check, 1u);
    EXPECT_EQ(server.requests_out(), 0u);
    EXPECT_EQ(server.request_bytes(), 0u);  // the announced 5 MB were never reserved
    close(client);

    // A known key proceeds as before: 100 Continue, then the body, then the request is handed out.
    const int known = connect_to(server.port());
    send_all(known, post_head("/v1/webhook?writeKey=open-key", 2, "Expect: 100-continue\r\n"));
    EXPECT_EQ(read_available(known, server, 100), "HTTP/1.1 100 Continue\r\n\r\n");
    send_all(known, "{}");
    std::vector<ReadyRequest> ready = wait_for_requests(server, 1);
    ASSERT_EQ(ready.size(), 1u);
    EXPECT_EQ(ready[0].request->body(), "{}");
    EXPECT_EQ(calls, 2);
    server.respond(ready[0].connection, ok("{}"), 0);
    // A request without a body is not checked from its head (it is complete at once).
    send_all(known, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    ready = wait_for_requests(server, 1);
    ASSERT_EQ(ready.size(), 1u);
    EXPECT_EQ(calls, 2);
    server.respond(ready[0].connection, ok("{}"), 0);
    close(known);
}

TEST_F(HeadCheckTest, BodySentWithTheHeadIsNotRead) {
    HttpServer server(options);
    const int client = connect_to(server.port());
    // Head, body and a pipelined request in one write: all of it is dropped after the refusal.
    send_all(client, post_head("/v1/track", 20, "Authorization: Bearer nope\r\n") + std::string(20, 'x') +
                         "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    const std::string answer = read_available(client, server);
    EXPECT_EQ(answer.rfind("HTTP/1.1 401 ", 0), 0u) << answer;
    EXPECT_EQ(answer.find("HTTP/1.1 401 ", 1), std::string::npos) << answer;  // one answer only
    std::vector<ReadyRequest> ready;
    server.poll(0, ready);
    EXPECT_TRUE(ready.empty());
    EXPECT_EQ(server.requests_out(), 0u);
    EXPECT_EQ(server.buffered_bytes(), 0u);
    close(client);
}

TEST_F(HeadCheckTest, CanBeReplacedAtRunTime) {
    options.head_check = nullptr;
    HttpServer server(options);
    server.set_head_check([](const segment::HttpRequest &) -> std::optional<HttpResponse> {
        return segment::json_error_response(403, "origin_not_allowed", "no", false);
    });
    const int refused = connect_to(server.port());
    send_all(refused, post_head("/v1/webhook", 2) + "{}");
    EXPECT_EQ(read_available(refused, server).rfind("HTTP/1.1 403 ", 0), 0u);
    close(refused);
    server.set_head_check(nullptr);
    const int accepted = connect_to(server.port());
    send_all(accepted, post_head("/v1/webhook", 2) + "{}");
    std::vector<ReadyRequest> ready = wait_for_requests(server, 1);
    ASSERT_EQ(ready.size(), 1u);
    server.respond(ready[0].connection, ok("{}"), 0);
    close(accepted);
}

TEST_F(HeadCheckTest, ACheckThatThrowsLeavesTheServerUsable) {
    options.head_check = [](const segment::HttpRequest &) -> std::optional<HttpResponse> {
        throw std::runtime_error("directory unavailable");
    };
    HttpServer server(options);
    const int client = connect_to(server.port());
    send_all(client, post_head("/v1/webhook", 4, "Expect: 100-continue\r\n"));
    int thrown = 0;
    std::vector<ReadyRequest> ready;
    for (int i = 0; i < 100 && thrown == 0; ++i) {
        try {
            server.poll(0, ready);
        } catch (const std::runtime_error &) {
            ++thrown;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    EXPECT_EQ(thrown, 1);
    EXPECT_TRUE(ready.empty());
    const std::string answer = read_available(client, server);
    EXPECT_EQ(answer.rfind("HTTP/1.1 500 ", 0), 0u) << answer;
    EXPECT_EQ(answer.find("100 Continue"), std::string::npos) << answer;
    close(client);
    // Requests without a body never reach the check; the server goes on serving them.
    const int other = connect_to(server.port());
    send_all(other, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    ready = wait_for_requests(server, 1);
    ASSERT_EQ(ready.size(), 1u);
    server.respond(ready[0].connection, ok("{}"), 0);
    EXPECT_EQ(read_available(other, server).rfind("HTTP/1.1 200 ", 0), 0u);
    close(other);
    EXPECT_EQ(server.buffered_bytes(), 0u);
}

TEST(HttpServer, RequestsOverTheByteBudgetAre503BeforeTheirBody) {
    HttpServerOptions options = loopback_options();
    options.max_buffered_bytes = 10000;
    options.busy_retry_after_seconds = 7;
    HttpServer server(options);
    const int first = connect_to(server.port());
    send_all(first, post_head("/v1/webhook", 6000) + std::string(6000, 'a'));
    std::vector<ReadyRequest> ready = wait_for_requests(server, 1);
    ASSERT_EQ(ready.size(), 1u);
    const uint64_t first_id = ready[0].connection;
    EXPECT_EQ(server.request_bytes(), 6000u);  // the body of the request out

    // 6000 held + 5000 announced > 10000: refused from its head, no 100 Continue, body never read.
    const int second = connect_to(server.port());
    send_all(second, post_head("/v1/webhook", 5000, "Expect: 100-continue\r\n"));
    const std::string refused = read_available(second, server);
    EXPECT_EQ(refused.rfind("HTTP/1.1 503 ", 0), 0u) << refused;
    EXPECT_NE(refused.find("\"code\":\"server_busy\""), std::string::npos) << refused;
    EXPECT_NE(refused.find("Retry-After: 7\r\n"), std::string::npos) << refused;
    EXPECT_NE(refused.find("Connection: close"), std::string::npos) << refused;
    EXPECT_EQ(refused.find("100 Continue"), std::string::npos) << refused;
    EXPECT_EQ(server.counters().refused_busy, 1u);
    close(second);

    // 6000 + 3000 fits: accepted as usual.
    const int third = connect_to(server.port());
    send_all(third, post_head("/v1/webhook", 3000, "Expect: 100-continue\r\n"));
    EXPECT_EQ(read_available(third, server, 100), "HTTP/1.1 100 Continue\r\n\r\n");
    send_all(third, std::string(3000, 'c'));
    ready = wait_for_requests(server, 1);
    ASSERT_EQ(ready.size(), 1u);
    EXPECT_EQ(ready[0].request->body().size(), 3000u);
    EXPECT_EQ(server.request_bytes(), 9000u);
    EXPECT_EQ(server.requests_out(), 2u);

    // The request accepted first was never affected; once both are answered nothing is held.
    server.respond(first_id, ok("1"), 0);
    server.respond(ready[0].connection, ok("3"), 0);
    EXPECT_EQ(read_available(first, server, 100).rfind("HTTP/1.1 200 ", 0), 0u);
    EXPECT_EQ(read_available(third, server, 100).rfind("HTTP/1.1 200 ", 0), 0u);
    EXPECT_EQ(server.requests_out(), 0u);
    EXPECT_EQ(server.request_bytes(), 0u);
    EXPECT_EQ(server.buffered_bytes(), 0u);
    close(first);
    close(third);
}

TEST(HttpServer, ChunkedBodyIsRefusedWhenItGrowsPastTheByteBudget) {
    HttpServerOptions options = loopback_options();
    options.max_buffered_bytes = 10000;
    HttpServer server(options);
    const int small = connect_to(server.port());
    send_all(
        small,
        "POST /v1/webhook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nnull\r\n0\r\n\r\n");
    std::vector<ReadyRequest> ready = wait_for_requests(server, 1);
    ASSERT_EQ(ready.size(), 1u);
    EXPECT_EQ(ready[0].request->body(), "null");
    server.respond(ready[0].connection, ok("{}"), 0);

    const int large = connect_to(server.port());
    send_all(large, "POST /v1/webhook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n" +
                        std::string(4096, 'a') + "\r\n");
    EXPECT_EQ(read_available(large, server, 100), "");  // 4096 bytes fit
    EXPECT_EQ(server.request_bytes(), 4096u);
    send_all(large, "2000\r\n" + std::string(8192, 'b') + "\r\n");
    const std::string refused = read_available(large, server);
    EXPECT_EQ(refused.rfind("HTTP/1.1 503 ", 0), 0u) << refused;
    EXPECT_NE(refused.find("server_busy"), std::string::npos);
    EXPECT_EQ(server.requests_out(), 0u);
    EXPECT_EQ(server.request_bytes(), 0u);
    close(small);
    close(large);
}

// Reads complete responses off the front of `received` and checks that each one's body starts with the
// expected request number; returns how many were complete.
size_t take_answers(std::string &received, size_t &next) {
    size_t taken = 0;
    for (;;) {
        const size_t head_end = received.find("\r\n\r\n");
        if (head_end == std::string::npos) {
            return taken;
        }
        const size_t length_at = received.find("Content-Length: ");
        EXPECT_LT(length_at, head_end);
        const size_t length = std::stoul(received.substr(length_at + 16));
        if (received.size() < head_end + 4 + length) {
            return taken;
        }
        const std::string body = received.substr(head_end + 4, length);
        EXPECT_EQ(body.substr(0, body.find('|')), "/" + std::to_string(next)) << "answer " << next;
        received.erase(0, head_end + 4 + length);
        ++next;
        ++taken;
    }
}

TEST(HttpServer, ClientThatNeverReadsItsAnswersCannotGrowTheServersMemory) {
    HttpServer server(loopback_options());
    const int client = socket(AF_INET, SOCK_STREAM, 0);
    const int small_buffer = 16 * 1024;  // so that the answers back up in the server, not in the kernel
    setsockopt(client, SOL_SOCKET, SO_RCVBUF, &small_buffer, sizeof small_buffer);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(server.port()));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(client, reinterpret_cast<sockaddr *>(&address), sizeof address), 0);
    ASSERT_EQ(fcntl(client, F_SETFL, O_NONBLOCK), 0);

    constexpr size_t kRequests = 2000;
    std::string requests;
    for (size_t i = 0; i < kRequests; ++i) {
        requests += "GET /" + std::to_string(i) + " HTTP/1.1\r\nHost: x\r\n\r\n";
    }
    const std::string padding(8000, 'x');  // 16 MB of answers in all
    size_t sent = 0;
    size_t answered = 0;
    size_t most_buffered = 0;
    // Sends what the socket takes, answers what the server hands out; true when anything moved.
    auto drive = [&]() {
        bool moved = false;
        if (sent < requests.size()) {
            const ssize_t count = send(client, requests.data() + sent, requests.size() - sent, MSG_NOSIGNAL);
            if (count > 0) {
                sent += static_cast<size_t>(count);
                moved = true;
            }
        }
        std::vector<ReadyRequest> ready;
        server.poll(0, ready);
        for (const ReadyRequest &request : ready) {
            server.respond(request.connection, ok(std::string(request.request->path()) + "|" + padding), 0);
            ++answered;
            moved = true;
        }
        most_buffered = std::max(most_buffered, server.buffered_bytes());
        return moved;
    };

    for (int idle = 0; idle < 50;) {
        if (drive()) {
            idle = 0;
        } else {
            ++idle;
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    }
    EXPECT_LT(answered, kRequests);  // the server stopped taking requests from a client that does not read
    EXPECT_LE(most_buffered, size_t(256 * 1024));
    EXPECT_EQ(server.requests_out(), 0u);

    // Once the client reads, every request gets its answer, in order.
    std::string received;
    size_t next = 0;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (next < kRequests && std::chrono::steady_clock::now() < until) {
        const bool moved = drive();
        char buffer[65536];
        const ssize_t count = recv(client, buffer, sizeof buffer, 0);
        if (count > 0) {
            received.append(buffer, static_cast<size_t>(count));
            take_answers(received, next);
        } else if (!moved) {
            pollfd descriptor{client, POLLIN, 0};
            ::poll(&descriptor, 1, 1);
        }
    }
    EXPECT_EQ(next, kRequests);
    EXPECT_EQ(answered, kRequests);
    EXPECT_LE(most_buffered, size_t(256 * 1024));
    EXPECT_EQ(server.requests_out(), 0u);
    EXPECT_EQ(server.buffered_bytes(), 0u);
    close(client);
}

}  // namespace

// Idle keep-alive connections are not walked on every poll() for their timeouts (with 10,000 of them that
// walk was most of the worker's CPU time), and a timeout set after a walk is still kept.
TEST(HttpServer, TimeoutsDoNotWalkEveryConnectionOnEveryPoll) {
    HttpServerOptions options = loopback_options();
    options.read_timeout_ms = 1000;
    options.idle_timeout_ms = 60000;
    HttpServer server(options);
    std::vector<int> idle;
    for (int i = 0; i < 20; ++i) {
        idle.push_back(connect_to(server.port()));
        send_all(idle.back(), "GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
        std::vector<ReadyRequest> ready = wait_for_requests(server, 1, 10);
        ASSERT_EQ(ready.size(), 1u);
        server.respond(ready[0].connection, ok("{}"), 10);
        ASSERT_EQ(read_available(idle.back(), server, 50, 10).rfind("HTTP/1.1 200 OK", 0), 0u);
    }
    std::vector<ReadyRequest> ready;
    server.poll(20, ready);  // may walk once
    const uint64_t walks = server.counters().deadline_scans;
    for (int64_t now = 21; now < 500; ++now) {
        server.poll(now, ready);
        EXPECT_GE(server.next_deadline_ms(), now);
    }
    EXPECT_EQ(server.counters().deadline_scans, walks);
    EXPECT_LE(server.next_deadline_ms(), 20 + 1000);

    const int stalled = connect_to(server.port());
    send_all(stalled, "GET /slow HTTP/1.1\r\n");  // its read_timeout runs from 500
    read_available(stalled, server, 50, 500);
    EXPECT_LE(server.next_deadline_ms(), 1500);
    EXPECT_EQ(read_available(stalled, server, 50, 1499), "");
    const std::string answer = read_available(stalled, server, 200, 1500);
    EXPECT_EQ(answer.rfind("HTTP/1.1 408 ", 0), 0u) << answer;
    EXPECT_EQ(server.connection_count(), idle.size() + 1);  // the idle ones are kept
    for (int fd : idle) {
        close(fd);
    }
    close(stalled);
}
