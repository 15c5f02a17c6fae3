// Routing, authentication and body checks of webhook requests. See webhook.h.
#include "core/no_postgres.h"
#include "core/webhook.h"

#include <openssl/evp.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <cstring>

#include "core/signature.h"

namespace segment {
namespace {

// SAX handler: accepts everything RapidJSON accepts, refuses strings with NUL, notes a top-level "writeKey".
class CheckHandler : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, CheckHandler> {
  public:
    bool Default() { return true; }
    bool String(const char *text, rapidjson::SizeType length, bool) {
        if (std::memchr(text, '\0', length) != nullptr) {
            has_nul = true;
            return false;
        }
        if (capture_next) {
            write_key.emplace(text, length);
        }
        value_started();
        return true;
    }
    bool Key(const char *text, rapidjson::SizeType length, bool) {
        if (std::memchr(text, '\0', length) != nullptr) {
            has_nul = true;
            return false;
        }
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
    bool has_nul = false;
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

void SourceDirectory::replace(std::vector<SourceInfo> sources) {
    std::unordered_map<std::string, SourceInfo> by_key;
    by_key.reserve(sources.size());
    for (SourceInfo &source : sources) {
        std::string key = source.write_key;
        by_key.emplace(std::move(key), std::move(source));
    }
    by_key_.swap(by_key);
}

const SourceInfo *SourceDirectory::find(std::string_view write_key) const {
    auto found = by_key_.find(std::string(write_key));
    return found == by_key_.end() ? nullptr : &found->second;
}

JsonCheck check_json(std::string_view body) {
    JsonCheck check;
    if (std::memchr(body.data(), '\0', body.size()) != nullptr) {
        // RapidJSON would take a raw NUL for the end of the input and ignore what follows.
        check.error = "the body contains a NUL byte, which is not valid JSON";
        return check;
    }
    CheckHandler handler;
    rapidjson::MemoryStream stream(body.data(), body.size());
    rapidjson::Reader reader;
    const rapidjson::ParseResult result =
        reader.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseNumbersAsStringsFlag>(stream,
                                                                                                    handler);
    if (result.IsError()) {
        if (handler.has_nul) {
            check.error = "the body contains \\u0000, which Postgres cannot store in text or jsonb";
        } else if (body.empty()) {
            check.error = "the body is empty";
        } else {
            check.error = std::string("the body is not valid JSON: ") +
                          rapidjson::GetParseError_En(result.Code()) + " (at byte " +
                          std::to_string(result.Offset()) + ")";
        }
        return check;
    }
    check.valid = true;
    check.is_object = handler.is_object;
    check.write_key = std::move(handler.write_key);
    check.message_count = handler.root_is_array || handler.elements > 0 ? handler.elements : 1;
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

WebhookDecision decide(const HttpRequest &request, const WebhookContext &context) {
    WebhookDecision decision;
    const std::string_view path = request.path();
    const bool webhook = path == "/v1/webhook" || path == "/v1/webhook/";
    if (path == "/health") {
        if (request.method() != "GET" && request.method() != "HEAD") {
            decision.response = error(405, "method_not_allowed", "use GET for /health");
            decision.response.allow = "GET, HEAD";
            return decision;
        }
        decision.action = WebhookAction::Health;
        return decision;
    }
    if (!webhook) {
        decision.response =
            error(404, "not_found", "no such endpoint; Segment webhooks are received at /v1/webhook");
        return decision;
    }
    if (request.method() != "POST" && request.method() != "PUT" && request.method() != "PATCH") {
        decision.response = error(405, "method_not_allowed", "use POST for /v1/webhook");
        decision.response.allow = "POST, PUT, PATCH";
        return decision;
    }
    if (!context.ingest_available) {
        decision.response = error(503, context.unavailable_code, context.unavailable_message);
        decision.response.retry_after_seconds = context.retry_after_seconds;
        return decision;
    }
    if (auto encoding = request.header("Content-Encoding")) {
        if (!equals_ignore_case(trim(*encoding), "identity")) {
            decision.response =
                error(415, "unsupported_encoding",
                      "Content-Encoding " + std::string(trim(*encoding)) + " is not supported");
            return decision;
        }
    }

    std::optional<std::string> key = write_key_from_request(request);
    decision.json = check_json(request.body());
    if (!key && decision.json.write_key) {
        key = decision.json.write_key;
    }
    if (!key || key->empty()) {
        if (!decision.json.valid && !key) {
            decision.response = error(400, "invalid_json", decision.json.error);
            return decision;
        }
        decision.response =
            error(401, "invalid_write_key",
                  "no write key: send it as ?writeKey=, HTTP Basic user name, Bearer token or "
                  "\"writeKey\" in the body");
        return decision;
    }
    const SourceInfo *source = context.sources ? context.sources->find(*key) : nullptr;
    if (source == nullptr) {
        decision.response = error(401, "invalid_write_key", "unknown write key");
        return decision;
    }
    if (!source->enabled) {
        decision.response = error(401, "invalid_write_key", "the source of this write key is disabled");
        return decision;
    }
    if (source->shared_secret) {
        const auto signature = request.header("X-Signature");
        if (!signature) {
            decision.response =
                error(401, "invalid_signature",
                      "this source has a shared secret: X-Signature (hex HMAC-SHA1 of the body) is required");
            return decision;
        }
        if (!verify_signature(request.body(), trim(*signature), *source->shared_secret)) {
            decision.response = error(401, "invalid_signature", "X-Signature does not match the body");
            return decision;
        }
    }
    decision.action = WebhookAction::Ingest;
    decision.source_id = source->id;
    return decision;
}

}  // namespace segment
