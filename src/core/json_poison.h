// Poison isolated per message. Some well-formed JSON cannot be stored by Postgres: a string holding \u0000
// (text cannot hold NUL), a lone UTF-16 surrogate escape (\ud800 without its low half, or a lone \udc00), or
// raw bytes that are not UTF-8. One such value must cost only the Segment message that holds it, not the
// other 999 of its batch: split_messages() finds the messages of a body and says which are poisoned, and
// body_without() rebuilds the body without them. Pure C++17; never includes Postgres, never modifies the body
// it is given, and never calls a body with poison "not JSON" (only a syntax error makes it invalid).
#pragma once
#include "core/no_postgres.h"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace segment {

enum class PoisonKind {
    None,
    NulCharacter,    // \u0000 in a string or key
    InvalidUnicode,  // a lone UTF-16 surrogate escape: \ud800 not followed by a low one, or a lone \udc00
    InvalidUtf8,     // a raw byte inside a string that is not part of a valid UTF-8 sequence
};

// Stable reason codes for dead letters and answers: "nul_character", "invalid_unicode", "invalid_utf8"
// ("none" for PoisonKind::None). The view's data() is NUL-terminated (a string literal).
std::string_view poison_reason_code(PoisonKind kind) noexcept;

// One top-level message: the bytes [begin, end) of the body, without surrounding whitespace or commas.
struct MessageSpan {
    size_t begin = 0;
    size_t end = 0;
    PoisonKind poison = PoisonKind::None;  // the first poison inside the message
    size_t poison_offset = 0;              // its byte offset in the body (the backslash, or the bad byte)
    size_t poison_count = 0;               // all the poisoned values inside the message
    std::string detail;                    // a sentence for the user; empty when not poisoned
};

struct MessageSplit {
    enum class Shape {
        Message,   // one JSON object: `messages` holds the whole object
        Array,     // a JSON array: `messages` holds its elements
        Envelope,  // an object with a "batch" array: `messages` holds that array's elements
        Scalar,    // a string, number, true, false or null: `messages` holds the whole value
    };
    bool valid = false;  // false: the body is not JSON at all (a syntax error), `error` says why
    std::string error;  // the sentence check_json() gives, e.g. "the body is not valid JSON: … (at byte 12)"
    Shape shape = Shape::Message;
    std::vector<MessageSpan> messages;  // in body order, non-overlapping
    // Array and Envelope: the bytes between the message list's brackets, [list_begin, list_end) (list_begin
    // is just after '[', list_end is the ']'). When an envelope repeats "batch", the last one counts, as in
    // jsonb; the earlier ones are envelope fields.
    size_t list_begin = 0;
    size_t list_end = 0;
    // Poison outside the messages, in the envelope's own fields (context, integrations, a key, …). Those
    // fields apply to every message, so the envelope as a whole cannot be stored.
    bool envelope_poisoned = false;
    PoisonKind envelope_poison = PoisonKind::None;
    size_t envelope_poison_offset = 0;
    std::string envelope_detail;
    size_t poison_count = 0;  // all the poisoned values of the body
    // The top-level "writeKey" string of an object body (the last one); absent when it holds poison.
    std::optional<std::string> write_key;
};

// Splits a body into its messages and finds the poison in each. Never throws except std::bad_alloc.
// A body without poison comes back with every span poison-free; a body whose only faults are poison is
// valid. A NUL byte in the body itself, an empty body and any syntax error make it invalid.
MessageSplit split_messages(std::string_view body);

// `body` without the messages whose `drop` entry is true (missing entries keep their message), given the
// `split` of that same body. Array and Envelope: the same shape, the message list holding the kept messages
// byte for byte, separated by a comma; every byte outside the list (the envelope's other fields) is kept as
// it stands. Message and Scalar: the body itself, or an empty string when its one message is dropped.
// Neighbours that are both kept keep the bytes between them, so a body that loses nothing comes back
// unchanged. When !split.valid: the body unchanged.
std::string body_without(std::string_view body, const MessageSplit &split, const std::vector<bool> &drop);

// Cheap checks of a string RapidJSON has decoded, for the hot path: whether it holds the UTF-8 form of a
// UTF-16 surrogate (ED A0..BF), which RapidJSON produces for a lone low-surrogate escape instead of refusing
// it, or a NUL. Returns the poison found, or PoisonKind::None.
bool decoded_string_has_surrogate(const char *text, size_t length) noexcept;
PoisonKind decoded_string_poison(const char *text, size_t length) noexcept;

}  // namespace segment
