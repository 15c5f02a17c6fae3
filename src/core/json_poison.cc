// Splitting a body into its Segment messages and finding the values Postgres cannot store. See json_poison.h.
//
// Two passes over a copy of the body. The first walks its strings and neutralises each poison in place, with
// the same length so that offsets stay those of the body: \u0000 and a lone surrogate escape become \ufffd, a
// byte that is not UTF-8 becomes '?'. It notes each poison's offset and kind. The second parses the copy with
// RapidJSON's SAX reader (iterative: deep nesting must not recurse) and notes where each top-level message
// starts and ends. A syntax error in the copy is a syntax error in the body, since only the insides of
// strings changed and only where the body was valid JSON up to that point. Never modifies the caller's body.
#include "core/no_postgres.h"
#include "core/hex.h"
#include "core/json_poison.h"

#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <cstring>

namespace segment {
namespace {

struct Poison {
    size_t offset;
    PoisonKind kind;
};

// The code unit of a \uXXXX escape at `at`, or -1 when there is none.
long escaped_unit(std::string_view text, size_t at) {
    if (at + 6 > text.size() || text[at] != '\\' || text[at + 1] != 'u') {
        return -1;
    }
    long unit = 0;
    for (size_t i = at + 2; i < at + 6; ++i) {
        const int digit = hex_digit_value(text[i]);
        if (digit < 0) {
            return -1;
        }
        unit = unit * 16 + digit;
    }
    return unit;
}

// The length of the valid UTF-8 sequence (RFC 3629: no overlong forms, no surrogates, nothing above
// U+10FFFF) starting at `at` with a byte >= 0x80, or 0 when that byte does not start one.
size_t utf8_sequence_length(std::string_view text, size_t at) {
    const auto byte = [&](size_t i) { return i < text.size() ? static_cast<unsigned char>(text[i]) : 0u; };
    const unsigned lead = byte(at);
    size_t length = 0;
    unsigned low = 0x80, high = 0xBF;  // the range of the second byte
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        low = lead == 0xE0 ? 0xA0 : 0x80;
        high = lead == 0xED ? 0x9F : 0xBF;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        low = lead == 0xF0 ? 0x90 : 0x80;
        high = lead == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (byte(at + 1) < low || byte(at + 1) > high) {
        return 0;
    }
    for (size_t i = at + 2; i < at + length; ++i) {
        if (byte(i) < 0x80 || byte(i) > 0xBF) {
            return 0;
        }
    }
    return length;
}

// Pass 1: neutralises every poison of `text` in place (same length) and lists them in offset order. Bytes
// outside strings are left alone: anything wrong there is a syntax error for the parser to report.
std::vector<Poison> neutralise_poison(std::string &text) {
    std::vector<Poison> found;
    const auto replace_escape = [&](size_t at, PoisonKind kind) {
        std::memcpy(&text[at], "\\ufffd", 6);
        found.push_back({at, kind});
    };
    bool in_string = false;
    size_t at = 0;
    size_t bad_run_end = 0;  // just past the last byte that was not UTF-8
    while (at < text.size()) {
        const unsigned char c = static_cast<unsigned char>(text[at]);
        if (!in_string) {
            in_string = c == '"';
            ++at;
        } else if (c == '"') {
            in_string = false;
            ++at;
        } else if (c == '\\') {
            const long unit = escaped_unit(text, at);
            if (unit == 0) {
                replace_escape(at, PoisonKind::NulCharacter);
            } else if (unit >= 0xD800 && unit <= 0xDBFF) {
                const long next = escaped_unit(text, at + 6);
                if (next >= 0xDC00 && next <= 0xDFFF) {
                    at += 12;  // a valid pair
                    continue;
                }
                replace_escape(at, PoisonKind::InvalidUnicode);
            } else if (unit >= 0xDC00 && unit <= 0xDFFF) {
                replace_escape(at, PoisonKind::InvalidUnicode);
            }
            // Any other escape is skipped whole: "\\u0000" is a backslash and "u0000", not a NUL.
            at += unit >= 0 ? 6 : 2;
        } else if (c >= 0x80) {
            const size_t length = utf8_sequence_length(text, at);
            if (length == 0) {
                // A run of bad bytes (a broken sequence, a Latin-1 word) counts as one poison.
                if (at != bad_run_end) {
                    found.push_back({at, PoisonKind::InvalidUtf8});
                }
                text[at] = '?';
                bad_run_end = ++at;
            } else {
                at += length;
            }
        } else {
            ++at;
        }
    }
    return found;
}

MessageSpan span(size_t begin, size_t end) {
    MessageSpan message;
    message.begin = begin;
    message.end = end;
    return message;
}

bool is_json_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// Pass 2's SAX handler: notes the shape of the body, the byte span of each top-level message and the
// top-level "writeKey". Tell() is the offset of '{' or '[' at StartObject/StartArray, of '}' or ']' at
// EndObject/EndArray, and just past the value at a scalar.
class SpanHandler : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, SpanHandler> {
  public:
    SpanHandler(std::string_view text, const rapidjson::MemoryStream &stream)
        : text_(text), stream_(stream) {}

    bool Default() { return scalar(); }  // null, true, false (numbers and strings have their own below)
    bool RawNumber(const char *, rapidjson::SizeType, bool) { return scalar(); }
    bool String(const char *text, rapidjson::SizeType length, bool) {
        if (capture_write_key_) {
            write_key.emplace(text, length);
            write_key_span = {write_key_from_, stream_.Tell()};
        }
        return scalar();
    }
    bool Key(const char *text, rapidjson::SizeType length, bool) {
        if (depth_ == 1) {
            const std::string_view key(text, length);
            capture_write_key_ = key == "writeKey";
            write_key_from_ = stream_.Tell();
            batch_next_ = key == "batch";
        }
        return true;
    }
    bool StartObject() { return start(false); }
    bool StartArray() { return start(true); }
    bool EndObject(rapidjson::SizeType) { return end(); }
    bool EndArray(rapidjson::SizeType) { return end(); }

    MessageSplit::Shape shape = MessageSplit::Shape::Scalar;
    std::vector<MessageSpan> messages;  // of the message list, or the root value
    size_t list_begin = 0, list_end = 0;
    std::optional<std::string> write_key;
    std::pair<size_t, size_t> write_key_span{0, 0};

  private:
    bool start(bool array) {
        const size_t at = stream_.Tell();
        if (depth_ == 0) {
            shape = array ? MessageSplit::Shape::Array : MessageSplit::Shape::Message;
            root_begin_ = at;
            if (array) {
                open_list(at);
            }
        } else if (depth_ == list_depth_) {
            element_begin_ = at;
        } else if (array && depth_ == 1 && batch_next_) {
            shape = MessageSplit::Shape::Envelope;
            messages.clear();  // a repeated "batch": the last one counts
            open_list(at);
        }
        value_started();
        ++depth_;
        return true;
    }
    bool end() {
        --depth_;
        const size_t at = stream_.Tell();  // the closing bracket
        if (depth_ + 1 == list_depth_) {
            list_end = at;
            list_depth_ = 0;
        } else if (list_depth_ > 0 && depth_ == list_depth_) {
            add_element(element_begin_, at + 1);
        }
        if (depth_ == 0 && shape == MessageSplit::Shape::Message) {
            messages.push_back(span(root_begin_, at + 1));
        }
        return true;
    }
    bool scalar() {
        const size_t at = stream_.Tell();
        if (depth_ == list_depth_ && depth_ > 0) {
            add_element(skip_separator(cursor_, true), at);
        } else if (depth_ == 0) {
            messages.push_back(span(skip_separator(0, false), at));
        }
        value_started();
        return true;
    }
    void open_list(size_t bracket) {
        list_begin = bracket + 1;
        cursor_ = list_begin;
        list_depth_ = depth_ + 1;
    }
    void add_element(size_t begin, size_t end) {
        messages.push_back(span(begin, end));
        cursor_ = end;
    }
    // The start of the value after `from`: past whitespace and, when `comma`, one comma and more whitespace.
    size_t skip_separator(size_t from, bool comma) const {
        while (from < text_.size() && is_json_space(text_[from])) {
            ++from;
        }
        if (comma && from < text_.size() && text_[from] == ',') {
            return skip_separator(from + 1, false);
        }
        return from;
    }
    void value_started() {
        if (depth_ == 1) {
            capture_write_key_ = false;
            batch_next_ = false;
        }
    }

    std::string_view text_;
    const rapidjson::MemoryStream &stream_;
    int depth_ = 0;
    int list_depth_ = 0;  // the depth inside the message list while it is open, else 0
    size_t root_begin_ = 0;
    size_t element_begin_ = 0;
    size_t cursor_ = 0;  // the end of the previous element of the message list
    bool batch_next_ = false;
    bool capture_write_key_ = false;
    size_t write_key_from_ = 0;
};

std::string describe(PoisonKind kind, std::string_view body, size_t offset) {
    std::string sentence = "the string at byte " + std::to_string(offset) + " of the body ";
    switch (kind) {
        case PoisonKind::NulCharacter:
            return sentence + "contains \\u0000, which Postgres cannot store in text or jsonb";
        case PoisonKind::InvalidUnicode:
            return sentence + "contains a lone UTF-16 surrogate escape (" +
                   std::string(body.substr(offset, 6)) + "), which is not Unicode text";
        case PoisonKind::InvalidUtf8: {
            static const char kHex[] = "0123456789ABCDEF";
            const unsigned char byte = static_cast<unsigned char>(body[offset]);
            return sentence + "contains the byte 0x" + kHex[byte >> 4] + kHex[byte & 15] +
                   ", which is not valid UTF-8 (Postgres stores UTF-8 text)";
        }
        case PoisonKind::None:
            break;
    }
    return std::string();
}

// The sentence for a thing holding `count` poisons, the first being `first`.
std::string describe_all(const Poison &first, size_t count, std::string_view body) {
    std::string sentence = describe(first.kind, body, first.offset);
    if (count > 1) {
        sentence += " (and " + std::to_string(count - 1) + " more such value" + (count > 2 ? "s" : "") + ")";
    }
    return sentence;
}

}  // namespace

std::string_view poison_reason_code(PoisonKind kind) noexcept {
    switch (kind) {
        case PoisonKind::NulCharacter:
            return "nul_character";
        case PoisonKind::InvalidUnicode:
            return "invalid_unicode";
        case PoisonKind::InvalidUtf8:
            return "invalid_utf8";
        case PoisonKind::None:
            break;
    }
    return "none";
}

bool decoded_string_has_surrogate(const char *text, size_t length) noexcept {
    const char *end = text + length;
    for (const char *at = text; at < end;) {
        const void *found = std::memchr(at, 0xED, static_cast<size_t>(end - at));
        if (found == nullptr) {
            return false;
        }
        at = static_cast<const char *>(found) + 1;
        if (at < end && static_cast<unsigned char>(*at) >= 0xA0 && static_cast<unsigned char>(*at) <= 0xBF) {
            return true;
        }
    }
    return false;
}

PoisonKind decoded_string_poison(const char *text, size_t length) noexcept {
    if (std::memchr(text, '\0', length) != nullptr) {
        return PoisonKind::NulCharacter;
    }
    return decoded_string_has_surrogate(text, length) ? PoisonKind::InvalidUnicode : PoisonKind::None;
}

MessageSplit split_messages(std::string_view body) {
    MessageSplit split;
    if (body.empty()) {
        split.error = "the body is empty";
        return split;
    }
    if (std::memchr(body.data(), '\0', body.size()) != nullptr) {
        // RapidJSON would take a raw NUL for the end of the input and ignore what follows.
        split.error = "the body contains a NUL byte, which is not valid JSON";
        return split;
    }
    std::string copy(body);
    const std::vector<Poison> poisons = neutralise_poison(copy);

    // RapidJSON refuses a number beyond a double's range (1e400) even as a string; numeric may hold it, so it
    // is no syntax error: the copy gets a zero in its place (the caller's own parse of that message decides
    // whether Postgres can store it). Each such number costs a parse of the body: a few are allowed.
    constexpr int kLargeNumbersAllowed = 64;
    std::optional<SpanHandler> handler;
    rapidjson::ParseResult result;
    for (int large_numbers = 0;; ++large_numbers) {
        rapidjson::MemoryStream stream(copy.data(), copy.size());
        handler.emplace(copy, stream);
        rapidjson::Reader reader;
        result = reader.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseNumbersAsStringsFlag |
                              rapidjson::kParseIterativeFlag>(stream, *handler);
        if (!result.IsError() || result.Code() != rapidjson::kParseErrorNumberTooBig ||
            large_numbers == kLargeNumbersAllowed) {
            break;
        }
        // 0.000… of the same length (a too-big number has 5 bytes or more), so that spans keep their bounds.
        const size_t start = result.Offset();
        for (size_t at = start; at < copy.size() && std::strchr("+-0123456789.eE", copy[at]) != nullptr;
             ++at) {
            copy[at] = at == start + 1 ? '.' : '0';
        }
    }
    if (result.IsError()) {
        split.error = std::string("the body is not valid JSON: ") +
                      rapidjson::GetParseError_En(result.Code()) + " (at byte " +
                      std::to_string(result.Offset()) + ")";
        return split;
    }
    split.valid = true;
    split.shape = handler->shape;
    split.messages = std::move(handler->messages);
    split.list_begin = handler->list_begin;
    split.list_end = handler->list_end;
    split.poison_count = poisons.size();

    // Both lists are in body order: walk them together.
    size_t next = 0;
    size_t envelope_count = 0;
    const Poison *envelope_first = nullptr;
    for (MessageSpan &span : split.messages) {
        for (; next < poisons.size() && poisons[next].offset < span.begin; ++next) {
            envelope_first = envelope_first ? envelope_first : &poisons[next];
            ++envelope_count;
        }
        const size_t first = next;
        for (; next < poisons.size() && poisons[next].offset < span.end; ++next) {
        }
        if (next > first) {
            span.poison = poisons[first].kind;
            span.poison_offset = poisons[first].offset;
            span.poison_count = next - first;
            span.detail = describe_all(poisons[first], span.poison_count, body);
        }
    }
    for (; next < poisons.size(); ++next) {
        envelope_first = envelope_first ? envelope_first : &poisons[next];
        ++envelope_count;
    }
    if (envelope_first != nullptr) {
        split.envelope_poisoned = true;
        split.envelope_poison = envelope_first->kind;
        split.envelope_poison_offset = envelope_first->offset;
        split.envelope_detail = describe_all(*envelope_first, envelope_count, body);
    }

    if (handler->write_key) {
        bool poisoned = false;
        for (const Poison &poison : poisons) {
            poisoned = poisoned || (poison.offset >= handler->write_key_span.first &&
                                    poison.offset < handler->write_key_span.second);
        }
        if (!poisoned) {
            split.write_key = std::move(handler->write_key);
        }
    }
    return split;
}

std::string body_without(std::string_view body, const MessageSplit &split, const std::vector<bool> &drop) {
    const auto dropped = [&drop](size_t i) { return i < drop.size() && drop[i]; };
    if (!split.valid) {
        return std::string(body);
    }
    if (split.shape == MessageSplit::Shape::Message || split.shape == MessageSplit::Shape::Scalar) {
        return dropped(0) ? std::string() : std::string(body);
    }
    // Kept neighbours keep the bytes between them (a body that loses nothing comes back unchanged); a comma
    // joins the others.
    std::string rebuilt;
    rebuilt.reserve(body.size());
    rebuilt.append(body.substr(0, split.list_begin));
    const size_t count = split.messages.size();
    size_t previous = count;  // the last kept message, none yet
    for (size_t i = 0; i < count; ++i) {
        if (dropped(i)) {
            continue;
        }
        const MessageSpan &span = split.messages[i];
        if (previous == count) {
            if (i == 0) {
                rebuilt.append(body.substr(split.list_begin, span.begin - split.list_begin));
            }
        } else if (previous + 1 == i) {
            rebuilt.append(
                body.substr(split.messages[previous].end, span.begin - split.messages[previous].end));
        } else {
            rebuilt.push_back(',');
        }
        rebuilt.append(body.substr(span.begin, span.end - span.begin));
        previous = i;
    }
    if (previous != count && previous + 1 == count) {
        const size_t end = split.messages[previous].end;
        rebuilt.append(body.substr(end, split.list_end - end));
    }
    rebuilt.append(body.substr(split.list_end));
    return rebuilt;
}

}  // namespace segment
