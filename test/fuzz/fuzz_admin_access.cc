// libFuzzer target for the admin listener's request checks and the metrics' text format. The first input byte
// picks the peer, the token and whether the rest is a request head or a label value. A request head is parsed
// and handed to check_admin_access (Cookie, Host and Authorization parsing), route_admin_request and the
// endpoint labels; the invariants: an answer is either allowed or a 401/403 refusal, a refusal never contains
// the token, and a cookie is set only for a valid ?token=. A label value is escaped and must come out as
// valid UTF-8 with no raw line feed, quote or lone backslash. It must never depend on anything outside
// src/core.
#include "core/no_postgres.h"

#include "core/admin_http.h"
#include "core/http_request.h"
#include "core/prometheus.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

#define FUZZ_CHECK(condition)                                                                  \
    do {                                                                                       \
        if (!(condition)) {                                                                    \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #condition); \
            std::abort();                                                                      \
        }                                                                                      \
    } while (0)

void check_label(const std::string &value) {
    const std::string escaped = segment::escape_prometheus_label_value(value);
    for (size_t i = 0; i < escaped.size(); ++i) {
        FUZZ_CHECK(escaped[i] != '\n');
        if (escaped[i] == '\\') {
            FUZZ_CHECK(i + 1 < escaped.size());
            FUZZ_CHECK(escaped[i + 1] == '\\' || escaped[i + 1] == '"' || escaped[i + 1] == 'n');
            ++i;
        } else {
            FUZZ_CHECK(escaped[i] != '"');
        }
    }
    // And a whole sample line with it ends where it should.
    segment::PrometheusWriter writer;
    writer.sample("x", {{"label", value}}, uint64_t{1});
    FUZZ_CHECK(writer.text().back() == '\n');
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) {
        return 0;
    }
    const uint8_t mode = data[0];
    const std::string input(reinterpret_cast<const char *>(data + 1), size - 1);
    if (mode & 0x80) {
        check_label(input);
        return 0;
    }
    static const char *const kPeers[] = {"127.0.0.1", "::1", "192.0.2.7", "127.1.2.3"};
    const std::string token = (mode & 0x04) ? "" : "s3cret";
    const char *peer = kPeers[mode & 0x03];
    segment::HttpRequestParser parser;
    parser.feed(input.data(), input.size());
    if (parser.state() != segment::HttpParseState::kComplete) {
        return 0;
    }
    const segment::HttpRequest request = parser.take_request();
    const segment::AdminAccess access = segment::check_admin_access(request, peer, token);
    FUZZ_CHECK(access.allowed != access.refusal.has_value());
    if (access.refusal) {
        FUZZ_CHECK(access.refusal->status == 401 || access.refusal->status == 403);
        FUZZ_CHECK(token.empty() || access.refusal->body.find(token) == std::string::npos);
    }
    if (!access.set_cookie.empty()) {
        FUZZ_CHECK(access.allowed && !token.empty());
        FUZZ_CHECK(access.set_cookie.find(token) == std::string::npos);
    }
    if (token.empty() && access.allowed) {
        FUZZ_CHECK(segment::is_loopback_address(peer));
    }
    const segment::AdminTarget target = segment::route_admin_request(request);
    FUZZ_CHECK(target.asset.empty() || target.asset.find('/') == std::string::npos);
    (void)segment::request_endpoint_label(segment::classify_ingest_endpoint(request.path()));
    return 0;
}
