// Helpers of the HttpServer unit tests: a server on a free loopback port, and a client that sends, waits for
// requests and reads answers while driving the server (the tests are single-threaded).
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "core/http_server.h"

namespace http_server_test {

using segment::HttpResponse;
using segment::HttpServer;
using segment::HttpServerOptions;
using segment::ReadyRequest;

inline HttpServerOptions loopback_options() {
    HttpServerOptions options;
    options.listen_addresses = {"127.0.0.1"};
    options.port = 0;
    return options;
}

inline int connect_to(int port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr *>(&address), sizeof address), 0);
    return fd;
}

inline void send_all(int fd, const std::string &bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
        const ssize_t count = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
        ASSERT_GT(count, 0);
        sent += static_cast<size_t>(count);
    }
}

// Polls the server until `want` requests are ready (or a second passes).
inline std::vector<ReadyRequest> wait_for_requests(HttpServer &server, size_t want, int64_t now = 0) {
    std::vector<ReadyRequest> ready;
    for (int i = 0; i < 200 && ready.size() < want; ++i) {
        server.poll(now, ready);
        if (ready.size() < want) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    }
    return ready;
}

// Reads what the client has received within `milliseconds`, driving the server meanwhile.
inline std::string read_available(int fd, HttpServer &server, int milliseconds = 200, int64_t now = 0) {
    std::string received;
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(milliseconds);
    while (std::chrono::steady_clock::now() < until) {
        std::vector<ReadyRequest> ignored;
        server.poll(now, ignored);
        pollfd descriptor{fd, POLLIN, 0};
        if (::poll(&descriptor, 1, 5) > 0) {
            char buffer[4096];
            const ssize_t count = recv(fd, buffer, sizeof buffer, 0);
            if (count <= 0) {
                break;
            }
            received.append(buffer, static_cast<size_t>(count));
        }
    }
    return received;
}

inline HttpResponse ok(const std::string &body) {
    HttpResponse response;
    response.body = body;
    return response;
}

}  // namespace http_server_test
