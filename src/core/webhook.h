// What the worker does with one HTTP request before anything touches the database: route it, find its source
// by write key, check its X-Signature, and check that the body is JSON Postgres can store. The answer is
// either an immediate HTTP response (an error, or /health) or "ingest this body for that source".
// Pure C++; never includes Postgres. Every check that can fail without the database fails here.
#pragma once
#include "core/no_postgres.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/http_request.h"
#include "core/http_response.h"
#include "core/message.h"
#include "core/signature.h"

namespace segment {

struct SourceInfo {
    int32_t id = 0;
    std::string name;
    std::string write_key;
    std::optional<std::string> shared_secret;
    bool enabled = true;
    // The write key and secret before the last rotation, while their grace lasts (empty / absent otherwise).
    std::string previous_write_key;
    std::optional<std::string> previous_shared_secret;
    bool require_full_signature = false;           // only a signature over the whole body is accepted
    std::optional<int32_t> max_events_per_second;  // absent: unlimited
    bool honor_deletions = false;                  // {"type":"delete"} forgets the user
};

// The sources the worker knows, by write key: the current one, and the previous one while its grace lasts.
// Rebuilt from segment_sources about once a second (and at once on a change). Implemented in webhook_auth.cc.
class SourceDirectory {
  public:
    void replace(std::vector<SourceInfo> sources);
    // The source whose current write key this is; else the one whose previous key (still in its grace) it
    // is. A current key always wins: a previous key equal to another source's key never shadows it.
    const SourceInfo *find(std::string_view write_key) const;
    size_t size() const { return sources_.size(); }

  private:
    std::vector<SourceInfo> sources_;
    std::unordered_map<std::string, size_t> by_key_;           // current write key -> index in sources_
    std::unordered_map<std::string, size_t> by_previous_key_;  // previous write key -> index in sources_
};

// What the X-Signature `signature` covers of a request for `source`, under its shared secret or else its
// previous secret (while its grace lasts): the body as received (`raw_body`), or the body after decompression
// or newline-delimited JSON (`decoded_body`, null when the body was not rewritten). A signature over the
// whole body wins over one over the first element. Implemented in webhook_auth.cc.
SignatureCoverage source_signature_coverage(const SourceInfo &source, std::string_view signature,
                                            std::string_view raw_body, const std::string_view *decoded_body);

// The body's JSON, checked the way jsonb will need it. Valid means well-formed JSON; a body whose only faults
// are values Postgres cannot store (\u0000, a lone surrogate escape, bytes that are not UTF-8 inside a
// string) is valid with has_poison, so that split_messages() (json_poison.h) can cost them only their own
// messages. Also reports a top-level "writeKey" string of an object body (absent when that string is
// poisoned).
struct JsonCheck {
    bool valid = false;
    std::string error;  // why not, for the 400 answer and the dead letter
    bool has_poison = false;
    bool is_object = false;
    std::optional<std::string> write_key;
    size_t message_count = 0;  // elements of a top-level array or of an object's "batch" array, else 1
                               // (an estimate from the size when the body was not parsed)
};
JsonCheck check_json(std::string_view body);

enum class WebhookAction {
    Respond,  // send `response` now
    Health,   // the caller answers /health from its own state
    Ingest,   // store the body for `source_id` (or, when !json.valid, dead-letter it and answer 400)
};

struct WebhookDecision {
    WebhookAction action = WebhookAction::Respond;
    HttpResponse response;
    int32_t source_id = 0;
    JsonCheck json;
    // The body to store when it is not the request's body as received (it was compressed, or
    // newline-delimited JSON that is stored as an array); empty `rewritten_body` with !body_rewritten means
    // request.body().
    bool body_rewritten = false;
    std::string rewritten_body;
    std::optional<MessageType> implied_type;  // /v1/track and friends
    std::string client_ip;                    // tracking API endpoints: fills context.ip where it is missing
    // What a verified X-Signature covered (None when the source has no shared secret): which messages are
    // stored with segment_events.signature_verified.
    SignatureCoverage signature = SignatureCoverage::None;
    // Headers every answer to this request carries (CORS), including the caller's final one.
    std::vector<std::pair<std::string, std::string>> headers;
    // The source's rate limit (see rate_limit.h), and what this request costs against it: its events, counted
    // exactly (the body was parsed to count them; a body that is not JSON costs one). 0 without a limit.
    std::optional<int32_t> max_events_per_second;
    uint64_t event_count = 0;
};

struct WebhookContext {
    const SourceDirectory *sources = nullptr;
    bool ingest_available = true;  // false while the extension is missing from the database
    std::string unavailable_code;  // e.g. "extension_missing"
    std::string unavailable_message;
    uint32_t retry_after_seconds = 5;
    size_t max_body_bytes = 16 * 1024 * 1024;  // also the limit of a decompressed body
    std::vector<std::string> cors_origins;     // allowed browser origins; "*" allows every origin
    bool trust_proxy = false;                  // take the client address from X-Forwarded-For
    // For check_request_head(): whether a source over its rate limit has room for one event now (false: the
    // seconds until it has). Null: rate limits are not checked from the head (decide() never checks them; the
    // caller charges the events it counts).
    bool (*rate_limit_room)(int32_t source_id, int32_t events_per_second,
                            uint32_t *retry_after_seconds) = nullptr;
};

// `peer` is the connection's remote address. A write key given in the request (query or Authorization) is
// looked up before the body is decompressed or parsed.
WebhookDecision decide(const HttpRequest &request, std::string_view peer, const WebhookContext &context);

// The write key a request names, in order of precedence: ?writeKey=, Authorization Basic (user name), Bearer.
// nullopt when none of those is present (the body may still carry one).
std::optional<std::string> write_key_from_request(const HttpRequest &request);

// What decide() would answer from the request line and headers alone, for a server to send before reading
// the body (HttpServerOptions::head_check): 404 unknown path, 405 wrong method (and the 204 answer to a CORS
// preflight), 403 origin not allowed, 503 with Retry-After while ingest is unavailable, and 401
// invalid_write_key for a write key in the query or Authorization header that is unknown or disabled, and 429
// rate_limited when that key's source has no room for even one event (context.rate_limit_room). The
// response is the one decide() gives the same request, CORS headers included. nullopt when the request may
// proceed: a known key, /health, or no key in the request (it may be in the body).
std::optional<HttpResponse> check_request_head(const HttpRequest &request, const WebhookContext &context);

}  // namespace segment
