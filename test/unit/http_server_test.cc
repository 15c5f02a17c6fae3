// Unit tests of src/core/http_server over real loopback sockets: requests handed out in order, pipelining,
// answers after respond(), 100-continue, protocol errors, timeouts and the connection limit.
#include "core/http_server.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "http_server_test_util.h"

namespace {

using namespace http_server_test;
using segment::HttpServer;
using segment::HttpServerOptions;
using segment::ReadyRequest;

TEST(HttpServer, AnswersOnlyAfterRespond) {
    HttpServer server(loopback_options());
    const int client = connect_to(server.port());
    send_all(client, "POST /v1/webhook?writeKey=k HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
    std::vector<ReadyRequest> ready = wait_for_requests(server, 1);
    ASSERT_EQ(ready.size(), 1u);
    EXPECT_EQ(ready[0].request->path(), "/v1/webhook");
    EXPECT_EQ(ready[0].request->body(), "{}");
    EXPECT_EQ(ready[0].peer, "127.0.0.1");
    EXPECT_EQ(server.requests_out(), 1u);
    EXPECT_EQ(read_available(client, server, 50), "");  // nothing before respond()
    server.respond(ready[0].connection, ok("{\"a\":1}"), 0);
    const std::string answer = read_available(client, server);
    EXPECT_EQ(answer.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << answer;
    EXPECT_NE(answer.find("\r\n\r\n{\"a\":1}"), std::string::npos);
    EXPECT_EQ(server.requests_out(), 0u);
    close(client);
}

TEST(HttpServer, PipelinedRequestsAreHandedOutOneAtATimeInOrder) {
    HttpServer server(loopback_options());
    const int client = connect_to(server.port());
    send_all(client,
             "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: "
             "x\r\n\r\n");
    std::string answers;
    for (const char *path : {"/a", "/b", "/c"}) {
        std::vector<ReadyRequest> ready = wait_for_requests(server, 1);
        ASSERT_EQ(ready.size(), 1u) << path;
        EXPECT_EQ(ready[0].request->path(), path);
        server.respond(ready[0].connection, ok(path), 0);
    }
    answers = read_available(client, server);
    const size_t a = answers.find("/a"), b = answers.find("/b"), c = answers.find("/c");
    ASSERT_NE(c, std::string::npos) << answers;
    EXPECT_LT(a, b);
    EXPECT_LT(b, c);
    close(client);
}

TEST(HttpServer, SendsContinueBeforeTheBody) {
    HttpServer server(loopback_options());
    const int client = connect_to(server.port());
    send_all(client,
             "POST /v1/webhook HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    EXPECT_EQ(read_available(client, server, 100), "HTTP/1.1 100 Continue\r\n\r\n");
    send_all(client, "null");
    std::vector<ReadyRequest> ready = wait_for_requests(server, 1);
    ASSERT_EQ(ready.size(), 1u);
    EXPECT_EQ(ready[0].request->body(), "null");
    close(client);
}

TEST(HttpServer, AnswersProtocolErrorsItselfAndCloses) {
    HttpServerOptions options = loopback_options();
    options.parser_limits.max_body_bytes = 10;
    HttpServer server(options);
    const int client = connect_to(server.port());
    send_all(client, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n");
    const std::string answer = read_available(client, server);
    EXPECT_EQ(answer.rfind("HTTP/1.1 413 ", 0), 0u) << answer;
    EXPECT_NE(answer.find("\"code\":\"request_too_large\""), std::string::npos);
    EXPECT_NE(answer.find("Connection: close"), std::string::npos);
    EXPECT_EQ(server.requests_out(), 0u);
    close(client);
}

TEST(HttpServer, StalledRequestGets408WhileOthersAreServed) {
    HttpServerOptions options = loopback_options();
    options.read_timeout_ms = 1000;
    HttpServer server(options);
    const int stalled = connect_to(server.port());
    send_all(stalled, "POST /v1/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"half\":");
    std::vector<ReadyRequest> ready;
    server.poll(0, ready);
    const int other = connect_to(server.port());
    send_all(other, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    ready = wait_for_requests(server, 1, 10);
    ASSERT_EQ(ready.size(), 1u);
    EXPECT_EQ(ready[0].request->path(), "/health");
    server.respond(ready[0].connection, ok("{}"), 10);
    EXPECT_EQ(read_available(other, server, 100, 10).rfind("HTTP/1.1 200 OK", 0), 0u);
    EXPECT_GE(server.next_deadline_ms(), 0);
    const std::string answer =
        read_available(stalled, server, 200, 2000);  // the clock has moved past the timeout
    EXPECT_EQ(answer.rfind("HTTP/1.1 408 ", 0), 0u) << answer;
    close(stalled);
    close(other);
}

TEST(HttpServer, RefusesConnectionsOverTheLimit) {
    HttpServerOptions options = loopback_options();
    options.max_connections = 1;
    HttpServer server(options);
    const int first = connect_to(server.port());
    std::vector<ReadyRequest> ready;
    for (int i = 0; i < 20 && server.connection_count() == 0; ++i) {
        server.poll(0, ready);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_EQ(server.connection_count(), 1u);
    const int second = connect_to(server.port());
    const std::string answer = read_available(second, server);
    EXPECT_EQ(answer.rfind("HTTP/1.1 503 ", 0), 0u) << answer;
    EXPECT_NE(answer.find("too_many_connections"), std::string::npos);
    close(first);
    close(second);
}

// A client sends its request right after connecting, often before the server accepts: the 503 over the limit
// must end in an orderly close (FIN), not a reset that can make the client lose the answer.
TEST(HttpServer, RefusedConnectionIsClosedInOrderAfterItsRequest) {
    HttpServerOptions options = loopback_options();
    options.max_connections = 1;
    HttpServer server(options);
    const int first = connect_to(server.port());
    std::vector<ReadyRequest> ready;
    for (int i = 0; i < 20 && server.connection_count() == 0; ++i) {
        server.poll(0, ready);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_EQ(server.connection_count(), 1u);
    const int second = connect_to(server.port());
    send_all(second, "POST /v1/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // queued before the accept
    server.poll(0, ready);
    std::string answer;
    ssize_t count = 0;
    int error = 0;
    for (int i = 0; i < 100; ++i) {
        pollfd descriptor{second, POLLIN, 0};
        if (::poll(&descriptor, 1, 10) <= 0) {
            continue;
        }
        char buffer[4096];
        count = recv(second, buffer, sizeof buffer, 0);
        error = errno;
        if (count <= 0) {
            break;
        }
        answer.append(buffer, static_cast<size_t>(count));
    }
    EXPECT_EQ(answer.rfind("HTTP/1.1 503 ", 0), 0u) << answer;
    EXPECT_EQ(count, 0) << "the close was not orderly: " << std::strerror(error);
    EXPECT_EQ(server.connection_count(), 1u);
    close(first);
    close(second);
}

TEST(HttpServer, ClientGoneBeforeTheAnswerIsHarmless) {
    HttpServer server(loopback_options());
    const int client = connect_to(server.port());
    send_all(client, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
    std::vector<ReadyRequest> ready = wait_for_requests(server, 1);
    ASSERT_EQ(ready.size(), 1u);
    close(client);
    std::vector<ReadyRequest> more;
    for (int i = 0; i < 10; ++i) {
        server.poll(0, more);
    }
    EXPECT_EQ(ready[0].request->path(), "/x");  // still valid until answered
    server.respond(ready[0].connection, ok("late"), 0);
    EXPECT_EQ(server.requests_out(), 0u);
}

TEST(HttpServer, Http10ClosesUnlessKeepAlive) {
    HttpServer server(loopback_options());
    const int client = connect_to(server.port());
    send_all(client, "GET /one HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    std::vector<ReadyRequest> ready = wait_for_requests(server, 1);
    ASSERT_EQ(ready.size(), 1u);
    server.respond(ready[0].connection, ok("1"), 0);
    EXPECT_NE(read_available(client, server).find("Connection: keep-alive"), std::string::npos);
    send_all(client, "GET /two HTTP/1.0\r\n\r\n");
    ready = wait_for_requests(server, 1);
    ASSERT_EQ(ready.size(), 1u);
    server.respond(ready[0].connection, ok("2"), 0);
    const std::string answer = read_available(client, server);
    EXPECT_NE(answer.find("Connection: close"), std::string::npos) << answer;
    close(client);
}

}  // namespace
