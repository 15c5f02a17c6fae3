// libFuzzer target for segment::split_messages and body_without: spans lie inside the body, in order and
// without overlap, each poison inside its message; a body RapidJSON parses into storable strings has no
// poison; a body RapidJSON parses is never called invalid; check_json agrees on validity; and the body
// without its poisoned messages (plus a few others) is JSON Postgres can store, holding the kept messages
// unchanged.
#include "core/json_poison.h"

#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/webhook.h"

namespace {

void require(bool condition) {
    if (!condition) {
        std::abort();
    }
}

// Counts decoded strings Postgres could not store; parses anything RapidJSON accepts.
struct PoisonCounter : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, PoisonCounter> {
    bool String(const char *text, rapidjson::SizeType length, bool) {
        poisoned += segment::decoded_string_poison(text, length) != segment::PoisonKind::None;
        return true;
    }
    bool Key(const char *text, rapidjson::SizeType length, bool copy) { return String(text, length, copy); }
    size_t poisoned = 0;
};

// Whether RapidJSON (validating UTF-8) parses `text`, and how many strings of it hold poison. With
// `allow_large_numbers`, a number beyond a double's range (which RapidJSON refuses and numeric may hold)
// counts as parsed too; the poison count then covers only the text before it.
bool parses(std::string_view text, size_t &poisoned, bool allow_large_numbers = false) {
    rapidjson::MemoryStream stream(text.data(), text.size());
    PoisonCounter counter;
    rapidjson::Reader reader;
    const rapidjson::ParseResult result =
        reader.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseNumbersAsStringsFlag |
                     rapidjson::kParseIterativeFlag>(stream, counter);
    poisoned = counter.poisoned;
    return !result.IsError() || (allow_large_numbers && result.Code() == rapidjson::kParseErrorNumberTooBig);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    // An exact-size heap copy so AddressSanitizer sees any read past the end.
    const std::string body(reinterpret_cast<const char *>(data), size);
    const segment::MessageSplit split = segment::split_messages(body);
    const bool has_nul_byte = std::memchr(body.data(), '\0', body.size()) != nullptr;

    size_t poisoned_strings = 0;
    const bool plain = !has_nul_byte && !body.empty() && parses(body, poisoned_strings);
    if (plain) {
        require(split.valid);
        if (poisoned_strings == 0) {
            require(split.poison_count == 0 && !split.envelope_poisoned);
        }
    }
    const segment::JsonCheck check = segment::check_json(body);
    require(check.valid == split.valid);
    require(check.valid || check.error == split.error);
    if (!split.valid) {
        require(!split.error.empty());
        require(segment::body_without(body, split, {}) == body);
        return 0;
    }
    require(check.has_poison == (split.poison_count > 0));
    require(split.poison_count > 0 || !plain || poisoned_strings == 0);

    // Spans: inside the body, non-empty, in order, not overlapping, inside the message list.
    size_t previous_end = 0;
    size_t poisons = 0;
    const bool listed = split.shape == segment::MessageSplit::Shape::Array ||
                        split.shape == segment::MessageSplit::Shape::Envelope;
    require(listed || split.messages.size() == 1);
    for (const segment::MessageSpan &span : split.messages) {
        require(span.begin < span.end && span.end <= body.size() && span.begin >= previous_end);
        if (listed) {
            require(split.list_begin <= span.begin && span.end <= split.list_end);
        }
        require((span.poison == segment::PoisonKind::None) == (span.poison_count == 0));
        require((span.poison == segment::PoisonKind::None) == span.detail.empty());
        if (span.poison != segment::PoisonKind::None) {
            require(span.begin <= span.poison_offset && span.poison_offset < span.end);
        }
        poisons += span.poison_count;
        previous_end = span.end;
    }
    require(split.envelope_poisoned == (poisons < split.poison_count));
    if (split.shape != segment::MessageSplit::Shape::Envelope) {
        require(!split.envelope_poisoned);
    }

    // Drop every poisoned message and, driven by the input, some others: what is left is storable JSON.
    std::vector<bool> drop(split.messages.size());
    for (size_t i = 0; i < drop.size(); ++i) {
        drop[i] = split.messages[i].poison != segment::PoisonKind::None || (data[i % size] & 1) != 0;
    }
    const std::string rest = segment::body_without(body, split, drop);
    if (!listed && drop[0]) {
        require(rest.empty());
        return 0;
    }
    size_t rest_poisoned = 0;
    if (!split.envelope_poisoned) {
        require(parses(rest, rest_poisoned, true) && rest_poisoned == 0);
    }
    const segment::MessageSplit again = segment::split_messages(rest);
    require(again.valid && again.shape == split.shape);
    require(again.poison_count == split.poison_count - poisons);
    size_t kept = 0;
    for (size_t i = 0; i < drop.size(); ++i) {
        if (drop[i]) {
            continue;
        }
        require(kept < again.messages.size());
        const segment::MessageSpan &before = split.messages[i];
        const segment::MessageSpan &after = again.messages[kept++];
        require(body.compare(before.begin, before.end - before.begin, rest, after.begin,
                             after.end - after.begin) == 0);
        require(after.poison == segment::PoisonKind::None);
    }
    require(kept == again.messages.size());
    if (listed) {
        require(rest.compare(0, again.list_begin, body, 0, split.list_begin) == 0);
        require(rest.compare(again.list_end, std::string::npos, body, split.list_end, std::string::npos) ==
                0);
    }
    return 0;
}
