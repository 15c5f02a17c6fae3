// The Segment spec message: which fields we read, how they are typed, defaulted and validated. This is the
// one place the rules live; both the SQL functions and the HTTP worker call it. Pure C++, never includes
// Postgres, never allocates: every string it returns is a view into the caller's input or a static constant.
#pragma once
#include "core/no_postgres.h"
#include "core/timestamp.h"

#include <array>
#include <optional>
#include <string_view>

namespace segment {

// What a top-level field of a message holds. The caller (a jsonb or RapidJSON reader) fills these.
enum class FieldKind { Absent, Null, String, Number, Bool, Object, Array };

struct Field {
    FieldKind kind = FieldKind::Absent;
    std::string_view text;  // the unescaped string, or the number's text; empty for the other kinds

    bool is_text() const { return kind == FieldKind::String || kind == FieldKind::Number; }
};

// The scalar fields of one message, as read from its top-level object.
struct MessageFields {
    Field type, message_id, event, name, category, user_id, anonymous_id, group_id, previous_id;
    Field timestamp, original_timestamp, sent_at, received_at;
};

// The JSON keys of MessageFields, in the same order; readers look these up.
struct FieldKey {
    std::string_view key;
    Field MessageFields::*member;
};
extern const std::array<FieldKey, 13> kMessageFieldKeys;

enum class MessageType { Track, Identify, Page, Screen, Group, Alias };

// "track", "identify", …; nullopt for anything else. Case-insensitive.
std::optional<MessageType> message_type_from_name(std::string_view name) noexcept;
std::string_view message_type_name(MessageType type) noexcept;

// A message read the way segment_parse() presents it: ids as text (numbers keep their digits), the type in
// lower case when it is one of the six, timestamps parsed (unparseable ones absent), and `timestamp`
// defaulted: the message's own, else receivedAt - (sentAt - originalTimestamp), else originalTimestamp.
struct ParsedMessage {
    std::optional<std::string_view> message_id, type, event, name, category, user_id, anonymous_id, group_id,
        previous_id;
    std::optional<UnixMicros> timestamp, original_timestamp, sent_at, received_at;
};

ParsedMessage parse_message(const MessageFields &fields) noexcept;

// Segment's clock-skew correction: the event time on the receiver's clock.
std::optional<UnixMicros> corrected_timestamp(std::optional<UnixMicros> own,
                                              std::optional<UnixMicros> received,
                                              std::optional<UnixMicros> sent,
                                              std::optional<UnixMicros> original) noexcept;

// Why a message cannot be stored. The codes are stable: users filter segment_rejected on them.
enum class RejectReason {
    None,
    NotAnObject,
    UnknownType,
    TypeMismatch,
    DeletionRequest,
    MissingIdentity,
    MissingEvent,
    MissingPreviousId,
    MissingGroupId,
    InvalidMessageId,
};

std::string_view reject_reason_code(RejectReason reason) noexcept;

// Longest messageId we store; Segment's own are under 100 characters.
constexpr size_t kMaxMessageIdLength = 200;

// A message checked for storage. On rejection `reason` is set and `detail` is a static human sentence.
struct ValidatedMessage {
    RejectReason reason = RejectReason::None;
    std::string_view detail;
    MessageType type = MessageType::Track;
    ParsedMessage parsed;    // with timestamp defaulted against `received_at` as below
    UnixMicros timestamp;    // never absent for an accepted message: falls back to received_at
    UnixMicros received_at;  // when we received it (not the message's own receivedAt)
};

// Applies the ingest rules: the type is one of the six (or implied by the endpoint when absent), every call
// has userId or anonymousId, track has event, alias has previousId and userId, group has groupId, messageId
// (when present) is text of at most kMaxMessageIdLength characters. The skew correction uses our own
// received_at.
ValidatedMessage validate_message(const MessageFields &fields, UnixMicros received_at,
                                  std::optional<MessageType> implied_type = std::nullopt) noexcept;

// A messageId for a message that has none: "sw-" and 32 hex digits of SHA-256 over `canonical_content`, which
// the caller builds from the message without its sentAt/receivedAt (those change when a client retries).
// Writes 35 characters and a NUL into `out`. False only if libcrypto fails.
bool derive_message_id(std::string_view canonical_content, char out[36]) noexcept;

}  // namespace segment
