// The admin listener's access checks and routes, the metrics' endpoint labels, and the Prometheus text
// format.
#include "core/admin_http.h"
#include "core/prometheus.h"

#include <gtest/gtest.h>

#include <string>

namespace {

using segment::AdminRoute;
using segment::HttpRequest;
using segment::HttpRequestParser;

HttpRequest parse(const std::string &head) {
    HttpRequestParser parser;
    parser.feed(head.data(), head.size());
    EXPECT_EQ(parser.state(), segment::HttpParseState::kComplete) << head;
    return parser.take_request();
}

// A GET with a Host header (HTTP/1.1 requires one) unless `headers` names its own.
HttpRequest get(const std::string &target, const std::string &headers = "") {
    const std::string host = headers.find("Host:") == std::string::npos ? "Host: localhost:8081\r\n" : "";
    return parse("GET " + target + " HTTP/1.1\r\n" + host + headers + "\r\n");
}

TEST(AdminAccess, WithoutTokenOnlyLoopbackClientsUnderALoopbackHost) {
    EXPECT_TRUE(segment::check_admin_access(get("/"), "127.0.0.1", "").allowed);
    EXPECT_TRUE(segment::check_admin_access(get("/", "Host: 127.0.0.1:1\r\n"), "127.0.0.1", "").allowed);
    EXPECT_TRUE(segment::check_admin_access(get("/", "Host: [::1]:8081\r\n"), "::1", "").allowed);
    auto remote = segment::check_admin_access(get("/"), "192.0.2.1", "");
    ASSERT_TRUE(remote.refusal);
    EXPECT_EQ(remote.refusal->status, 403);
    EXPECT_NE(remote.refusal->body.find("\"forbidden\""), std::string::npos);
    // DNS rebinding: a loopback peer, a foreign Host.
    auto rebound = segment::check_admin_access(get("/", "Host: evil.example:8081\r\n"), "127.0.0.1", "");
    ASSERT_TRUE(rebound.refusal);
    EXPECT_EQ(rebound.refusal->status, 403);
    EXPECT_FALSE(segment::check_admin_access(parse("GET / HTTP/1.0\r\n\r\n"), "127.0.0.1", "").allowed);
}

TEST(AdminAccess, BearerTokenQueryTokenAndCookie) {
    const std::string token = "s3cret-token";
    EXPECT_TRUE(segment::check_admin_access(get("/metrics", "Authorization: Bearer s3cret-token\r\n"),
                                            "192.0.2.1", token)
                    .allowed);
    auto wrong = segment::check_admin_access(get("/metrics", "Authorization: Bearer s3cret-tokem\r\n"),
                                             "127.0.0.1", token);
    ASSERT_TRUE(wrong.refusal);
    EXPECT_EQ(wrong.refusal->status, 401);
    EXPECT_EQ(wrong.refusal->body.find(token), std::string::npos);
    auto missing = segment::check_admin_access(get("/"), "127.0.0.1", token);
    ASSERT_TRUE(missing.refusal);
    EXPECT_EQ(missing.refusal->status, 401);

    auto by_query = segment::check_admin_access(get("/?token=s3cret-token"), "192.0.2.1", token);
    ASSERT_TRUE(by_query.allowed);
    EXPECT_NE(by_query.set_cookie.find("HttpOnly"), std::string::npos);
    EXPECT_NE(by_query.set_cookie.find("SameSite=Strict"), std::string::npos);
    EXPECT_EQ(by_query.set_cookie.find(token), std::string::npos) << "the cookie must not hold the token";
    const std::string cookie = by_query.set_cookie.substr(0, by_query.set_cookie.find(';'));
    EXPECT_TRUE(
        segment::check_admin_access(get("/api/recent", "Cookie: a=b; " + cookie + "\r\n"), "192.0.2.1", token)
            .allowed);
    auto other_token =
        segment::check_admin_access(get("/", "Cookie: " + cookie + "\r\n"), "192.0.2.1", "other");
    ASSERT_TRUE(other_token.refusal);
    EXPECT_EQ(other_token.refusal->status, 401);
    auto bad_query = segment::check_admin_access(get("/?token=nope"), "127.0.0.1", token);
    ASSERT_TRUE(bad_query.refusal);
    EXPECT_EQ(bad_query.refusal->status, 401);
}

TEST(AdminAccess, HelpersCompareAndRecognizeLoopback) {
    EXPECT_TRUE(segment::constant_time_equal("abc", "abc"));
    EXPECT_FALSE(segment::constant_time_equal("abc", "abd"));
    EXPECT_FALSE(segment::constant_time_equal("abc", "abcd"));
    EXPECT_TRUE(segment::is_loopback_address("127.0.0.1"));
    EXPECT_TRUE(segment::is_loopback_address("127.8.9.10"));
    EXPECT_TRUE(segment::is_loopback_address("::1"));
    EXPECT_FALSE(segment::is_loopback_address("10.0.0.1"));
    EXPECT_FALSE(segment::is_loopback_address("127.evil"));
}

TEST(AdminRoutes, PagesFilesAndApi) {
    EXPECT_EQ(segment::route_admin_request(get("/")).route, AdminRoute::Page);
    EXPECT_EQ(segment::route_admin_request(get("/?token=x")).route, AdminRoute::Page);
    EXPECT_EQ(segment::route_admin_request(get("/admin.js")).asset, "admin.js");
    EXPECT_EQ(segment::route_admin_request(get("/metrics")).route, AdminRoute::Metrics);
    EXPECT_EQ(segment::route_admin_request(get("/api/recent?limit=3")).route, AdminRoute::Recent);
    EXPECT_EQ(segment::route_admin_request(get("/../etc/passwd")).route, AdminRoute::NotFound);
    EXPECT_EQ(
        segment::route_admin_request(parse("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"))
            .route,
        AdminRoute::MethodNotAllowed);
}

TEST(RequestEndpoints, LabelsAreBounded) {
    EXPECT_EQ(segment::request_endpoint_label(segment::classify_ingest_endpoint("/v1/webhook")), "webhook");
    EXPECT_EQ(segment::request_endpoint_label(segment::classify_ingest_endpoint("/v1/t")), "track");
    EXPECT_EQ(segment::request_endpoint_label(segment::classify_ingest_endpoint("/v1/batch/")), "batch");
    EXPECT_EQ(segment::request_endpoint_label(segment::classify_ingest_endpoint("/health")), "health");
    EXPECT_EQ(segment::request_endpoint_label(segment::classify_ingest_endpoint("/whatever")), "other");
}

TEST(Prometheus, EscapesLabelValuesAndWritesHistograms) {
    EXPECT_EQ(segment::escape_prometheus_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    EXPECT_EQ(segment::escape_prometheus_label_value(std::string("x\xff", 2)), "x\xef\xbf\xbd");
    EXPECT_EQ(segment::format_prometheus_number(0.25), "0.25");
    EXPECT_EQ(segment::format_prometheus_number(1.0 / 0.0), "+Inf");
    segment::PrometheusWriter writer;
    writer.family("x_total", "counter", "Things.\nCounted");
    writer.sample("x_total", {{"source", "we\"ird"}}, uint64_t{3});
    writer.family("y_seconds", "histogram", "Latency.");
    writer.histogram("y_seconds", {}, {0.1, 1}, {2, 1, 4}, 7.5);
    EXPECT_EQ(
        writer.text(),
        "# HELP x_total Things.\\nCounted\n# TYPE x_total counter\nx_total{source=\"we\\\"ird\"} 3\n"
        "# HELP y_seconds Latency.\n# TYPE y_seconds histogram\n"
        "y_seconds_bucket{le=\"0.1\"} 2\ny_seconds_bucket{le=\"1\"} 3\ny_seconds_bucket{le=\"+Inf\"} 7\n"
        "y_seconds_sum 7.5\ny_seconds_count 7\n");
}

}  // namespace
