// Routing, authentication and body checks of webhook requests. See webhook.h.
#include "core/no_postgres.h"
#include "core/webhook.h"

#include <openssl/evp.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <cstring>

#include "core/content_encoding.h"
#include "core/json_poison.h"
#include "core/rate_limit.h"
#include "core/signature.h"

namespace segment {
namespace {

// SAX handler: accepts everything RapidJSON accepts, notes a top-level "writeKey" and whether a decoded
// string holds a value Postgres cannot store (\u0000, or a lone low surrogate, which RapidJSON decodes as it
// is).
class CheckHandler : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, CheckHandler> {
  public:
    bool Default() { return true; }
    bool String(const char *text, rapidjson::SizeType length, bool) {
        const bool poisoned = decoded_string_poison(text, length) != PoisonKind::None;
        has_poison = has_poison || poisoned;
        if (capture_next && !poisoned) {
            write_key.emplace(text, length);
        }
        value_started();
        return true;
    }
    bool Key(const char *text, rapidjson::SizeType length, bool) {
        has_poison = has_poison || decoded_string_poison(text, length) != PoisonKind::None;
        capture_next = depth == 1 && length == 8 && std::memcmp(text, "writeKey", 8) == 0;
        batch_next = depth == 1 && length == 5 && std::memcmp(text, "batch", 5) == 0;
        return true;
    }
    bool StartObject() {
        value_started();
        if (depth == 0) {
            is_object = true;
        }
        ++depth;
        return true;
    }
    bool EndObject(rapidjson::SizeType) {
        --depth;
        return true;
    }
    bool StartArray() {
        const bool opens_batch = batch_next && depth == 1;
        value_started();
        if (depth == 0) {
            root_is_array = true;
        }
        ++depth;
        if (opens_batch) {
            in_batch = true;
        }
        return true;
    }
    bool EndArray(rapidjson::SizeType) {
        --depth;
        if (depth == 1) {
            in_batch = false;
        }
        return true;
    }
    // Every scalar other than a string ends a pending key's value.
    bool Null() { return scalar(); }
    bool Bool(bool) { return scalar(); }
    bool Int(int) { return scalar(); }
    bool Uint(unsigned) { return scalar(); }
    bool Int64(int64_t) { return scalar(); }
    bool Uint64(uint64_t) { return scalar(); }
    bool Double(double) { return scalar(); }
    bool RawNumber(const char *, rapidjson::SizeType, bool) { return scalar(); }

    int depth = 0;
    bool is_object = false;
    bool root_is_array = false;
    bool has_poison = false;
    bool capture_next = false;
    bool batch_next = false;
    bool in_batch = false;
    size_t elements = 0;  // messages seen in a top-level array or a "batch" array
    std::optional<std::string> write_key;

  private:
    // Every value (of any kind) passes here once, at the depth of its container.
    void value_started() {
        if ((root_is_array && depth == 1) || (in_batch && depth == 2)) {
            ++elements;
        }
        capture_next = false;
        batch_next = false;
    }
    bool scalar() {
        value_started();
        return true;
    }
};

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
        text.remove_prefix(1);
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
        text.remove_suffix(1);
    }
    return text;
}

bool starts_with_ignore_case(std::string_view text, std::string_view prefix) {
    return text.size() >= prefix.size() && equals_ignore_case(text.substr(0, prefix.size()), prefix);
}

std::optional<std::string> base64_decode(std::string_view text) {
    if (text.empty() || text.size() % 4 != 0) {
        return std::nullopt;
    }
    std::string decoded(text.size() / 4 * 3, '\0');
    const int length =
        EVP_DecodeBlock(reinterpret_cast<unsigned char *>(&decoded[0]),
                        reinterpret_cast<const unsigned char *>(text.data()), static_cast<int>(text.size()));
    if (length < 0) {
        return std::nullopt;
    }
    // EVP_DecodeBlock counts the padding as zero bytes.
    size_t padding = 0;
    if (text[text.size() - 1] == '=') {
        ++padding;
        if (text[text.size() - 2] == '=') {
            ++padding;
        }
    }
    decoded.resize(static_cast<size_t>(length) - padding);
    return decoded;
}

HttpResponse error(int status, std::string_view code, std::string_view message) {
    return json_error_response(status, code, message, false);
}

}  // namespace

JsonCheck check_json(std::string_view body) {
    JsonCheck check;
    if (!body.empty() && std::memchr(body.data(), '\0', body.size()) == nullptr) {
        // (A raw NUL would end RapidJSON's input early: split_messages refuses it below.)
        CheckHandler handler;
        rapidjson::MemoryStream stream(body.data(), body.size());
        rapidjson::Reader reader;
        const rapidjson::ParseResult result =
            reader.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseNumbersAsStringsFlag |
                         rapidjson::kParseIterativeFlag>(stream, handler);
        if (!result.IsError()) {
            check.valid = true;
            check.has_poison = handler.has_poison;
            check.is_object = handler.is_object;
            check.write_key = std::move(handler.write_key);
            check.message_count = handler.root_is_array || handler.elements > 0 ? handler.elements : 1;
            return check;
        }
    }
    // Not JSON, or JSON holding a lone high surrogate escape or bytes that are not UTF-8, which RapidJSON
    // refuses: the splitter tells the two apart (only this rare path pays for it).
    MessageSplit split = split_messages(body);
    if (!split.valid) {
        check.error = std::move(split.error);
        return check;
    }
    check.valid = true;
    check.has_poison = split.poison_count > 0;
    check.is_object =
        split.shape == MessageSplit::Shape::Message || split.shape == MessageSplit::Shape::Envelope;
    check.write_key = std::move(split.write_key);
    const bool listed = split.shape == MessageSplit::Shape::Array ||
                        (split.shape == MessageSplit::Shape::Envelope && !split.messages.empty());
    check.message_count = listed ? split.messages.size() : 1;  // as the plain parse counts them
    return check;
}

std::optional<std::string> write_key_from_request(const HttpRequest &request) {
    if (auto key = request.query_parameter("writeKey")) {
        return std::string(*key);
    }
    if (auto authorization = request.header("Authorization")) {
        const std::string_view value = trim(*authorization);
        if (starts_with_ignore_case(value, "Basic ")) {
            auto decoded = base64_decode(trim(value.substr(6)));
            if (!decoded) {
                return std::string();  // present but unreadable: an invalid key, not an absent one
            }
            const size_t colon = decoded->find(':');
            return colon == std::string::npos ? *decoded : decoded->substr(0, colon);
        }
        if (starts_with_ignore_case(value, "Bearer ")) {
            return std::string(trim(value.substr(7)));
        }
    }
    return std::nullopt;
}

namespace {

enum class Endpoint { Webhook, Single, Batch };

struct Route {
    std::string_view path;
    Endpoint endpoint;
    std::optional<MessageType> type;
};

// Segment's tracking API paths (and analytics.js' one-letter forms), and our webhook path.
const Route kRoutes[] = {
    {"/v1/webhook", Endpoint::Webhook, std::nullopt},
    {"/v1/batch", Endpoint::Batch, std::nullopt},
    {"/v1/import", Endpoint::Batch, std::nullopt},
    {"/v1/b", Endpoint::Batch, std::nullopt},
    {"/v1/track", Endpoint::Single, MessageType::Track},
    {"/v1/t", Endpoint::Single, MessageType::Track},
    {"/v1/identify", Endpoint::Single, MessageType::Identify},
    {"/v1/i", Endpoint::Single, MessageType::Identify},
    {"/v1/page", Endpoint::Single, MessageType::Page},
    {"/v1/p", Endpoint::Single, MessageType::Page},
    {"/v1/screen", Endpoint::Single, MessageType::Screen},
    {"/v1/s", Endpoint::Single, MessageType::Screen},
    {"/v1/group", Endpoint::Single, MessageType::Group},
    {"/v1/g", Endpoint::Single, MessageType::Group},
    {"/v1/alias", Endpoint::Single, MessageType::Alias},
    {"/v1/a", Endpoint::Single, MessageType::Alias},
};

const Route *find_route(std::string_view path) {
    if (path.size() > 1 && path.back() == '/') {
        path.remove_suffix(1);
    }
    for (const Route &route : kRoutes) {
        if (route.path == path) {
            return &route;
        }
    }
    return nullptr;
}

bool origin_allowed(std::string_view origin, const WebhookContext &context) {
    for (const std::string &allowed : context.cors_origins) {
        if (allowed == "*" || equals_ignore_case(allowed, origin)) {
            return true;
        }
    }
    return false;
}

bool allows_any_origin(const WebhookContext &context) {
    for (const std::string &allowed : context.cors_origins) {
        if (allowed == "*") {
            return true;
        }
    }
    return false;
}

// The client's address: the connection's peer, or with trust_proxy the first address of X-Forwarded-For.
std::string client_address(const HttpRequest &request, std::string_view peer, const WebhookContext &context) {
    if (context.trust_proxy) {
        if (auto forwarded = request.header("X-Forwarded-For")) {
            std::string_view first = *forwarded;
            const size_t comma = first.find(',');
            if (comma != std::string_view::npos) {
                first = first.substr(0, comma);
            }
            first = trim(first);
            if (!first.empty()) {
                return std::string(first);
            }
        }
    }
    return std::string(peer);
}

// Newline-delimited JSON (one message per line) as one JSON array; false unless every non-empty line is a
// JSON object.
bool ndjson_to_array(std::string_view body, std::string &array, JsonCheck &check) {
    if (body.find('\n') == std::string_view::npos) {
        return false;
    }
    array.clear();
    array.reserve(body.size() + 2);
    array.push_back('[');
    size_t lines = 0;
    while (!body.empty()) {
        const size_t end = body.find('\n');
        std::string_view line = body.substr(0, end);
        body = end == std::string_view::npos ? std::string_view() : body.substr(end + 1);
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
            line.remove_suffix(1);
        }
        while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
            line.remove_prefix(1);
        }
        if (line.empty()) {
            continue;
        }
        JsonCheck line_check = check_json(line);
        if (!line_check.valid || !line_check.is_object) {
            return false;
        }
        check.has_poison = check.has_poison || line_check.has_poison;
        if (!check.write_key && line_check.write_key) {
            check.write_key = std::move(line_check.write_key);
        }
        if (lines++ > 0) {
            array.push_back(',');
        }
        array.append(line.data(), line.size());
    }
    array.push_back(']');
    check.valid = lines > 0;
    check.error.clear();
    check.is_object = false;
    check.message_count = lines;
    return check.valid;
}

constexpr std::string_view kNoWriteKeyMessage =
    "no write key: send it as ?writeKey=, HTTP Basic user name, Bearer token or \"writeKey\" in the body";

WebhookDecision &refuse(WebhookDecision &decision, int status, std::string_view code,
                        std::string_view message) {
    decision.action = WebhookAction::Respond;
    decision.response = error(status, code, message);
    decision.response.extra_headers = decision.headers;
    return decision;
}

// Everything the request line and headers decide before the write key: the route, CORS, the method, and
// whether ingest is available. Returns the route when the request may go on; nullptr when `decision` is final
// (an answer to send, or /health). decide() and check_request_head() both start here, so they answer alike.
const Route *admit_request(const HttpRequest &request, const WebhookContext &context,
                           WebhookDecision &decision) {
    const std::string_view path = request.path();
    if (path == "/health") {
        if (request.method() != "GET" && request.method() != "HEAD") {
            decision.response = error(405, "method_not_allowed", "use GET for /health");
            decision.response.allow = "GET, HEAD";
            return nullptr;
        }
        decision.action = WebhookAction::Health;
        return nullptr;
    }
    const Route *route = find_route(path);
    if (route == nullptr) {
        decision.response =
            error(404, "not_found",
                  "no such endpoint; webhooks are received at /v1/webhook, the tracking API at "
                  "/v1/track, /v1/identify, /v1/page, /v1/screen, /v1/group, /v1/alias and /v1/batch");
        return nullptr;
    }

    // CORS: browsers (analytics.js) send from other origins; every answer carries the allowed origin.
    const auto origin = request.header("Origin");
    if (origin) {
        if (!origin_allowed(*origin, context)) {
            decision.response =
                error(403, "origin_not_allowed", "this origin is not in segment_webhook.cors_origins");
            return nullptr;
        }
        if (allows_any_origin(context)) {
            decision.headers.emplace_back("Access-Control-Allow-Origin", "*");
        } else {
            decision.headers.emplace_back("Access-Control-Allow-Origin", std::string(*origin));
            decision.headers.emplace_back("Vary", "Origin");
        }
    }
    const bool webhook = route->endpoint == Endpoint::Webhook;
    const char *allowed_methods = webhook ? "POST, PUT, PATCH, OPTIONS" : "POST, OPTIONS";
    if (request.method() == "OPTIONS") {
        decision.response.status = 204;
        decision.response.content_type.clear();
        decision.response.extra_headers = decision.headers;
        decision.response.extra_headers.emplace_back("Access-Control-Allow-Methods", allowed_methods);
        const auto requested = request.header("Access-Control-Request-Headers");
        decision.response.extra_headers.emplace_back(
            "Access-Control-Allow-Headers",
            requested ? std::string(*requested)
                      : "Content-Type, Authorization, X-Signature, Content-Encoding");
        decision.response.extra_headers.emplace_back("Access-Control-Max-Age", "86400");
        decision.response.allow = allowed_methods;
        return nullptr;
    }
    const bool method_ok =
        request.method() == "POST" || (webhook && (request.method() == "PUT" || request.method() == "PATCH"));
    if (!method_ok) {
        decision.response =
            error(405, "method_not_allowed", std::string("use POST for ") + std::string(route->path));
        decision.response.allow = allowed_methods;
        decision.response.extra_headers = decision.headers;
        return nullptr;
    }
    if (!context.ingest_available) {
        refuse(decision, 503, context.unavailable_code, context.unavailable_message);
        decision.response.retry_after_seconds = context.retry_after_seconds;
        return nullptr;
    }
    return route;
}

// The enabled source of `key`, or nullptr with `decision` refused (401 invalid_write_key).
const SourceInfo *find_enabled_source(std::string_view key, const WebhookContext &context,
                                      WebhookDecision &decision) {
    if (key.empty()) {
        refuse(decision, 401, "invalid_write_key", kNoWriteKeyMessage);
        return nullptr;
    }
    const SourceInfo *source = context.sources ? context.sources->find(key) : nullptr;
    if (source == nullptr) {
        refuse(decision, 401, "invalid_write_key", "unknown write key");
        return nullptr;
    }
    if (!source->enabled) {
        refuse(decision, 401, "invalid_write_key", "the source of this write key is disabled");
        return nullptr;
    }
    return source;
}

}  // namespace

std::optional<HttpResponse> check_request_head(const HttpRequest &request, const WebhookContext &context) {
    WebhookDecision decision;
    if (admit_request(request, context, decision) == nullptr) {
        if (decision.action == WebhookAction::Respond) {
            return std::move(decision.response);
        }
        return std::nullopt;  // /health
    }
    if (const std::optional<std::string> key = write_key_from_request(request)) {
        const SourceInfo *source = find_enabled_source(*key, context, decision);
        if (source == nullptr) {
            return std::move(decision.response);
        }
        uint32_t retry_after_seconds = 0;
        if (source->max_events_per_second && context.rate_limit_room != nullptr &&
            !context.rate_limit_room(source->id, *source->max_events_per_second, &retry_after_seconds)) {
            // Not even one event fits: whatever the body holds, it would be refused; do not read it.
            HttpResponse response =
                rate_limited_response(*source->max_events_per_second, retry_after_seconds);
            response.extra_headers = decision.headers;
            return response;
        }
    }
    return std::nullopt;  // a known key with room, or none yet (it may be in the body)
}

WebhookDecision decide(const HttpRequest &request, std::string_view peer, const WebhookContext &context) {
    WebhookDecision decision;
    const Route *route = admit_request(request, context, decision);
    if (route == nullptr) {
        return decision;
    }
    // A key in the request is looked up before the body is touched: an unknown key costs no inflate.
    const std::optional<std::string> key = write_key_from_request(request);
    const SourceInfo *source = nullptr;
    if (key) {
        source = find_enabled_source(*key, context, decision);
        if (source == nullptr) {
            return decision;
        }
    }

    // The body as sent: decompressed when it came compressed, its decoded size held to the same limit.
    std::string_view body = request.body();
    if (auto encoding = request.header("Content-Encoding")) {
        const std::string_view coding = trim(*encoding);
        if (!equals_ignore_case(coding, "identity")) {
            DecodedBody decoded = decode_body(coding, body, context.max_body_bytes);
            switch (decoded.status) {
                case DecodedBody::Status::Ok:
                    decision.body_rewritten = true;
                    decision.rewritten_body = std::move(decoded.body);
                    body = decision.rewritten_body;
                    break;
                case DecodedBody::Status::TooLarge:
                    return refuse(decision, 413, "request_too_large", decoded.message);
                case DecodedBody::Status::Unsupported:
                    return refuse(decision, 415, "unsupported_encoding", decoded.message);
                case DecodedBody::Status::Corrupt:
                    return refuse(decision, 400, "invalid_encoding", decoded.message);
            }
        }
    }

    // A rate-limited source pays for its events, so they are counted before anything is stored.
    const bool count_events = source != nullptr && source->max_events_per_second.has_value();
    if (key && body.find('\n') == std::string_view::npos && !count_events) {
        // The key is in the request and the body is one line (no newline-delimited JSON to recognise):
        // nothing needs the body parsed before the database step, whose own parse refuses invalid JSON the
        // same way (400 and a dead letter). Parsing it here too would cost a second pass over every byte.
        decision.json.valid = true;
        decision.json.message_count = body.size() / 1024 + 1;  // only steers when a batch is full
    } else {
        decision.json = check_json(body);
    }
    if (!decision.json.valid && route->endpoint != Endpoint::Single) {
        std::string array;
        JsonCheck lines;
        if (ndjson_to_array(body, array, lines)) {
            decision.json = std::move(lines);
            decision.body_rewritten = true;
            decision.rewritten_body = std::move(array);
        }
    }
    if (source == nullptr) {
        if (!decision.json.write_key) {
            if (!decision.json.valid) {
                return refuse(decision, 400, "invalid_json", decision.json.error);
            }
            return refuse(decision, 401, "invalid_write_key", kNoWriteKeyMessage);
        }
        source = find_enabled_source(*decision.json.write_key, context, decision);
        if (source == nullptr) {
            return decision;
        }
    }
    if (source->shared_secret) {
        const auto signature = request.header("X-Signature");
        if (!signature) {
            return refuse(
                decision, 401, "invalid_signature",
                "this source has a shared secret: X-Signature (hex HMAC-SHA1 of the body) is required");
        }
        decision.signature = source_signature_coverage(*source, trim(*signature), request.body(),
                                                       decision.body_rewritten ? &body : nullptr);
        if (decision.signature == SignatureCoverage::None) {
            return refuse(decision, 401, "invalid_signature", "X-Signature does not match the body");
        }
        if (decision.signature == SignatureCoverage::FirstElement && source->require_full_signature) {
            return refuse(decision, 401, "invalid_signature",
                          "X-Signature covers only the first element of the batch; this source requires a "
                          "signature over the whole body (require_full_signature)");
        }
    }
    decision.action = WebhookAction::Ingest;
    decision.source_id = source->id;
    if (source->max_events_per_second) {
        // The body was parsed above (the key came from it, or count_events): the count is exact.
        decision.max_events_per_second = source->max_events_per_second;
        decision.event_count = decision.json.valid ? decision.json.message_count : 1;
    }
    decision.implied_type = route->type;
    if (route->endpoint != Endpoint::Webhook) {
        decision.client_ip = client_address(request, peer, context);
    }
    return decision;
}

}  // namespace segment
