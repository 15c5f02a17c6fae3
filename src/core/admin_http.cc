// The admin listener's access checks and routes, and the endpoint labels of the metrics. See admin_http.h.
#include "core/admin_http.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace segment {
namespace {

HttpResponse refusal(int status, std::string_view code, std::string_view message) {
    HttpResponse response = json_error_response(status, code, message, false);
    if (status == 401) {
        response.extra_headers.emplace_back("WWW-Authenticate", "Bearer realm=\"segment_webhook admin\"");
    }
    response.extra_headers.emplace_back("Cache-Control", "no-store");
    return response;
}

// The value of cookie `name` in the Cookie header(s), or nullopt.
std::optional<std::string_view> cookie(const HttpRequest &request, std::string_view name) {
    for (const HttpHeader &header : request.headers()) {
        if (!equals_ignore_case(header.name, "Cookie")) {
            continue;
        }
        std::string_view rest = header.value;
        while (!rest.empty()) {
            const size_t end = rest.find(';');
            std::string_view pair = rest.substr(0, end);
            rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
            while (!pair.empty() && pair.front() == ' ') {
                pair.remove_prefix(1);
            }
            const size_t equals = pair.find('=');
            if (equals != std::string_view::npos && pair.substr(0, equals) == name) {
                return pair.substr(equals + 1);
            }
        }
    }
    return std::nullopt;
}

// The host part of a Host header value: "localhost:8081" → "localhost", "[::1]:8081" → "[::1]".
std::string_view host_name(std::string_view host) {
    if (!host.empty() && host.front() == '[') {
        const size_t close = host.find(']');
        return close == std::string_view::npos ? host : host.substr(0, close + 1);
    }
    const size_t colon = host.find(':');
    return colon == std::string_view::npos ? host : host.substr(0, colon);
}

bool is_loopback_host(std::string_view host) {
    const std::string_view name = host_name(host);
    return equals_ignore_case(name, "localhost") || name == "[::1]" || is_loopback_address(name);
}

}  // namespace

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) {
        return false;
    }
    return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool is_loopback_address(std::string_view address) noexcept {
    if (address == "::1") {
        return true;
    }
    if (address.substr(0, 4) != "127.") {
        return false;
    }
    // 127.x.y.z: digits and dots only.
    for (char c : address) {
        if (c != '.' && (c < '0' || c > '9')) {
            return false;
        }
    }
    return true;
}

std::string admin_cookie_value(std::string_view token) {
    static constexpr std::string_view kLabel = "segment_webhook admin session";
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (HMAC(EVP_sha256(), token.data(), static_cast<int>(token.size()),
             reinterpret_cast<const unsigned char *>(kLabel.data()), kLabel.size(), digest,
             &length) == nullptr) {
        return std::string();  // matches no cookie: an empty one is refused below
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex;
    for (unsigned int i = 0; i < length; ++i) {
        hex += kHex[digest[i] >> 4];
        hex += kHex[digest[i] & 0xf];
    }
    return hex;
}

AdminAccess check_admin_access(const HttpRequest &request, std::string_view peer, std::string_view token) {
    AdminAccess access;
    if (token.empty()) {
        const auto host = request.header("Host");
        if (!is_loopback_address(peer) || !host || !is_loopback_host(*host)) {
            access.refusal =
                refusal(403, "forbidden",
                        "without segment_webhook.admin_token the admin listener answers clients on "
                        "this machine only (as http://localhost:PORT/)");
            return access;
        }
        access.allowed = true;
        return access;
    }
    if (const auto authorization = request.header("Authorization")) {
        const std::string_view value = *authorization;
        if (value.size() > 7 && equals_ignore_case(value.substr(0, 7), "Bearer ") &&
            constant_time_equal(value.substr(7), token)) {
            access.allowed = true;
            return access;
        }
        access.refusal =
            refusal(401, "invalid_token", "the admin token in the Authorization header is wrong");
        return access;
    }
    if (const auto given = request.query_parameter("token")) {
        if (constant_time_equal(*given, token)) {
            access.allowed = true;
            access.set_cookie = std::string(kAdminCookieName) + "=" + admin_cookie_value(token) +
                                "; Path=/; HttpOnly; SameSite=Strict";
            return access;
        }
        access.refusal = refusal(401, "invalid_token", "the admin token in ?token= is wrong");
        return access;
    }
    if (const auto session = cookie(request, kAdminCookieName)) {
        const std::string expected = admin_cookie_value(token);
        if (!expected.empty() && constant_time_equal(*session, expected)) {
            access.allowed = true;
            return access;
        }
        access.refusal =
            refusal(401, "invalid_token",
                    "the admin session cookie is from another token; open the page with ?token= again");
        return access;
    }
    access.refusal =
        refusal(401, "missing_token",
                "the admin listener needs the admin token: Authorization: Bearer <token>, or ?token= "
                "once in a browser");
    return access;
}

AdminTarget route_admin_request(const HttpRequest &request) {
    AdminTarget target;
    std::string_view path = request.path();
    if (path.size() > 1 && path.back() == '/') {
        path.remove_suffix(1);
    }
    if (path == "/" || path == "/index.html") {
        target.route = AdminRoute::Page;
        target.asset = "index.html";
        target.content_type = "text/html; charset=utf-8";
    } else if (path == "/admin.css") {
        target.route = AdminRoute::Asset;
        target.asset = "admin.css";
        target.content_type = "text/css; charset=utf-8";
    } else if (path == "/admin.js") {
        target.route = AdminRoute::Asset;
        target.asset = "admin.js";
        target.content_type = "text/javascript; charset=utf-8";
    } else if (path == "/metrics") {
        target.route = AdminRoute::Metrics;
    } else if (path == "/api/recent") {
        target.route = AdminRoute::Recent;
    } else {
        return target;
    }
    if (request.method() != "GET") {
        target.route = AdminRoute::MethodNotAllowed;
    }
    return target;
}

HttpResponse admin_file_response(std::string body, std::string_view content_type) {
    HttpResponse response;
    response.content_type = std::string(content_type);
    response.body = std::move(body);
    response.extra_headers = {
        {"Cache-Control", "no-store"},
        {"X-Content-Type-Options", "nosniff"},
        {"X-Frame-Options", "DENY"},
        {"Referrer-Policy", "no-referrer"},
        {"Content-Security-Policy",
         "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
         "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"},
    };
    return response;
}

RequestEndpoint classify_ingest_endpoint(std::string_view path) noexcept {
    if (path.size() > 1 && path.back() == '/') {
        path.remove_suffix(1);
    }
    struct Label {
        std::string_view path;
        RequestEndpoint endpoint;
    };
    static constexpr Label kPaths[] = {
        {"/v1/webhook", RequestEndpoint::Webhook},   {"/v1/batch", RequestEndpoint::Batch},
        {"/v1/import", RequestEndpoint::Batch},      {"/v1/b", RequestEndpoint::Batch},
        {"/v1/track", RequestEndpoint::Track},       {"/v1/t", RequestEndpoint::Track},
        {"/v1/identify", RequestEndpoint::Identify}, {"/v1/i", RequestEndpoint::Identify},
        {"/v1/page", RequestEndpoint::Page},         {"/v1/p", RequestEndpoint::Page},
        {"/v1/screen", RequestEndpoint::Screen},     {"/v1/s", RequestEndpoint::Screen},
        {"/v1/group", RequestEndpoint::Group},       {"/v1/g", RequestEndpoint::Group},
        {"/v1/alias", RequestEndpoint::Alias},       {"/v1/a", RequestEndpoint::Alias},
        {"/health", RequestEndpoint::Health},
    };
    for (const Label &label : kPaths) {
        if (label.path == path) {
            return label.endpoint;
        }
    }
    return RequestEndpoint::Other;
}

std::string_view request_endpoint_label(RequestEndpoint endpoint) noexcept {
    switch (endpoint) {
        case RequestEndpoint::Webhook:
            return "webhook";
        case RequestEndpoint::Batch:
            return "batch";
        case RequestEndpoint::Track:
            return "track";
        case RequestEndpoint::Identify:
            return "identify";
        case RequestEndpoint::Page:
            return "page";
        case RequestEndpoint::Screen:
            return "screen";
        case RequestEndpoint::Group:
            return "group";
        case RequestEndpoint::Alias:
            return "alias";
        case RequestEndpoint::Health:
            return "health";
        case RequestEndpoint::Admin:
            return "admin";
        case RequestEndpoint::Metrics:
            return "metrics";
        default:
            return "other";
    }
}

}  // namespace segment
