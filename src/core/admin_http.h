// The admin listener's decisions that need nothing but the request: who may ask (the admin token, or a
// loopback client when there is none), which page, file or API the request names, and the endpoint label
// every request of the server is counted under in the metrics. Pure C++ over OpenSSL's libcrypto; never
// includes Postgres. Tokens are compared in constant time, and no answer ever echoes a token back.
#pragma once
#include "core/no_postgres.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/http_request.h"
#include "core/http_response.h"

namespace segment {

// The cookie a valid ?token= sets, so that the page's own requests need no token in their address.
constexpr std::string_view kAdminCookieName = "segment_webhook_admin";

// Whether the request may be served; otherwise the answer to send (401 or 403 JSON error). A valid ?token=
// also asks for a cookie (set_cookie: the whole Set-Cookie value) that authenticates the requests after it.
struct AdminAccess {
    bool allowed = false;
    std::optional<HttpResponse> refusal;
    std::string set_cookie;
};

// With a token: "Authorization: Bearer <token>", the cookie, or ?token=<token>. Without one: loopback clients
// only (127.0.0.0/8, ::1), and only under a loopback Host name (localhost, 127.x.y.z, [::1]): a page of
// another site that a browser resolved to 127.0.0.1 (DNS rebinding) names its own host and is refused.
AdminAccess check_admin_access(const HttpRequest &request, std::string_view peer, std::string_view token);

// Equality in time that depends on the lengths only, not on where the bytes differ.
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;
bool is_loopback_address(std::string_view address) noexcept;
// What the cookie holds: hex HMAC-SHA256 of a fixed label under the token (never the token itself); it
// changes with the token, so a new token ends the sessions of the old one.
std::string admin_cookie_value(std::string_view token);

enum class AdminRoute { Page, Asset, Metrics, Recent, NotFound, MethodNotAllowed };
struct AdminTarget {
    AdminRoute route = AdminRoute::NotFound;
    std::string asset;         // for Asset: the file name in the admin share directory
    std::string content_type;  // of Page and Asset
};
// GET / → the page (index.html); /admin.css, /admin.js → those files; /metrics; /api/recent.
AdminTarget route_admin_request(const HttpRequest &request);

// A 200 answer with a page or file of the admin listener: no caching, no framing by other sites, nothing
// loaded from elsewhere (Content-Security-Policy), no content sniffing.
HttpResponse admin_file_response(std::string body, std::string_view content_type);

// The endpoints requests are counted by (segment_webhook_requests_total{endpoint}): a fixed set, so that the
// series stay bounded whatever paths clients try.
enum class RequestEndpoint : uint8_t {
    Webhook,
    Batch,
    Track,
    Identify,
    Page,
    Screen,
    Group,
    Alias,
    Health,
    Admin,    // the admin listener's page, files and API
    Metrics,  // the admin listener's /metrics
    Other,    // any other path (answered 404), and requests refused before their path was known
    Count
};
RequestEndpoint classify_ingest_endpoint(std::string_view path) noexcept;
std::string_view request_endpoint_label(RequestEndpoint endpoint) noexcept;

}  // namespace segment
