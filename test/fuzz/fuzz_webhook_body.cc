// libFuzzer target for what decide() makes of a request body on the batch endpoint: a JSON body, an array, a
// batch envelope or newline-delimited JSON (one message per line, turned into an array), with the write key
// in the URL or, when the input says so, only in the body. Checks: decide() never crashes; a body it turns
// into an array is JSON whose messages are exactly the body's non-empty lines; a body it ingests as is splits
// into messages; what it counts as messages matches the splitter where it parsed the body.
#include "core/http_request.h"
#include "core/json_poison.h"
#include "core/webhook.h"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

void require(bool condition) {
    if (!condition) {
        std::abort();
    }
}

constexpr const char *kKey = "fuzz-write-key-0123456789";

segment::SourceDirectory &sources() {
    static segment::SourceDirectory directory = [] {
        segment::SourceDirectory made;
        segment::SourceInfo source;
        source.id = 1;
        source.name = "fuzz";
        source.write_key = kKey;
        made.replace({source});
        return made;
    }();
    return directory;
}

// Non-empty lines of `body` after trimming spaces, tabs and a trailing CR, as ndjson_to_array sees them.
size_t non_empty_lines(std::string_view body) {
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
        lines += line.empty() ? 0 : 1;
    }
    return lines;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) {
        return 0;
    }
    const bool key_in_url = (data[0] & 1) != 0;
    const std::string body(reinterpret_cast<const char *>(data) + 1, size - 1);
    std::string raw = std::string("POST /v1/batch") + (key_in_url ? "?writeKey=" + std::string(kKey) : "") +
                      " HTTP/1.1\r\nHost: fuzz\r\nContent-Length: " + std::to_string(body.size()) +
                      "\r\n\r\n" + body;
    segment::HttpParserLimits limits;
    limits.max_body_bytes = 1 << 20;
    segment::HttpRequestParser parser(limits);
    size_t offset = 0;
    for (int rounds = 0; rounds < 4 && parser.state() != segment::HttpParseState::kComplete &&
                         parser.state() != segment::HttpParseState::kError;
         ++rounds) {
        offset += parser.feed(raw.data() + offset, raw.size() - offset);
    }
    require(parser.state() == segment::HttpParseState::kComplete);
    const segment::HttpRequest request = parser.take_request();

    segment::WebhookContext context;
    context.sources = &sources();
    context.cors_origins = {"*"};
    const segment::WebhookDecision decision = segment::decide(request, "127.0.0.1", context);
    if (decision.action != segment::WebhookAction::Ingest) {
        require(decision.action == segment::WebhookAction::Respond && decision.response.status >= 400);
        return 0;
    }
    require(decision.source_id == 1);
    const std::string &stored = decision.body_rewritten ? decision.rewritten_body : request.body();
    const segment::MessageSplit split = segment::split_messages(stored);
    if (decision.body_rewritten) {
        // Newline-delimited JSON became an array of its lines, each a message.
        require(split.valid && split.shape == segment::MessageSplit::Shape::Array);
        require(split.messages.size() == non_empty_lines(body));
        require(decision.json.message_count == split.messages.size());
    } else if (decision.json.valid && !key_in_url) {
        // Parsed here (the key came from the body): the count is the splitter's.
        require(split.valid);
        const size_t messages = split.shape == segment::MessageSplit::Shape::Array ||
                                        split.shape == segment::MessageSplit::Shape::Envelope
                                    ? split.messages.size()
                                    : 1;
        require(decision.json.message_count == messages);
    }
    return 0;
}
