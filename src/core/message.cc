// Typing, defaulting and validation of Segment messages. Nothing here allocates or throws: the Postgres glue
// calls it from frames that may longjmp, so it must not own anything with a destructor.
#include "core/no_postgres.h"
#include "core/message.h"

#include <openssl/evp.h>

namespace segment {

const std::array<FieldKey, 13> kMessageFieldKeys = {{
    {"type", &MessageFields::type},
    {"messageId", &MessageFields::message_id},
    {"event", &MessageFields::event},
    {"name", &MessageFields::name},
    {"category", &MessageFields::category},
    {"userId", &MessageFields::user_id},
    {"anonymousId", &MessageFields::anonymous_id},
    {"groupId", &MessageFields::group_id},
    {"previousId", &MessageFields::previous_id},
    {"timestamp", &MessageFields::timestamp},
    {"originalTimestamp", &MessageFields::original_timestamp},
    {"sentAt", &MessageFields::sent_at},
    {"receivedAt", &MessageFields::received_at},
}};

namespace {

constexpr std::array<std::string_view, 6> kTypeNames = {"track",  "identify", "page",
                                                        "screen", "group",    "alias"};

bool equals_ignoring_case(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (size_t i = 0; i < a.size(); ++i) {
        char c = a[i];
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
        if (c != b[i]) {
            return false;
        }
    }
    return true;
}

// An id: a string or a number, kept as text. Empty strings count as absent, as they do for Segment.
std::optional<std::string_view> id_text(const Field &field) {
    if (!field.is_text() || field.text.empty()) {
        return std::nullopt;
    }
    return field.text;
}

std::optional<std::string_view> plain_text(const Field &field) {
    if (!field.is_text()) {
        return std::nullopt;
    }
    return field.text;
}

std::optional<UnixMicros> time_of(const Field &field) {
    if (field.kind != FieldKind::String) {
        return std::nullopt;
    }
    return parse_iso8601(field.text);
}

ValidatedMessage rejected(ValidatedMessage message, RejectReason reason, std::string_view detail) {
    message.reason = reason;
    message.detail = detail;
    return message;
}

}  // namespace

std::optional<MessageType> message_type_from_name(std::string_view name) noexcept {
    for (size_t i = 0; i < kTypeNames.size(); ++i) {
        if (equals_ignoring_case(name, kTypeNames[i])) {
            return static_cast<MessageType>(i);
        }
    }
    return std::nullopt;
}

std::string_view message_type_name(MessageType type) noexcept {
    return kTypeNames[static_cast<size_t>(type)];
}

std::optional<UnixMicros> corrected_timestamp(std::optional<UnixMicros> own,
                                              std::optional<UnixMicros> received,
                                              std::optional<UnixMicros> sent,
                                              std::optional<UnixMicros> original) noexcept {
    if (own) {
        return own;
    }
    if (received && sent && original) {
        return *received - (*sent - *original);
    }
    return original;
}

ParsedMessage parse_message(const MessageFields &fields) noexcept {
    ParsedMessage parsed;
    parsed.message_id = id_text(fields.message_id);
    if (fields.type.kind == FieldKind::String) {
        auto type = message_type_from_name(fields.type.text);
        parsed.type = type ? message_type_name(*type) : fields.type.text;
    }
    parsed.event = plain_text(fields.event);
    parsed.name = plain_text(fields.name);
    parsed.category = plain_text(fields.category);
    parsed.user_id = id_text(fields.user_id);
    parsed.anonymous_id = id_text(fields.anonymous_id);
    parsed.group_id = id_text(fields.group_id);
    parsed.previous_id = id_text(fields.previous_id);
    parsed.original_timestamp = time_of(fields.original_timestamp);
    parsed.sent_at = time_of(fields.sent_at);
    parsed.received_at = time_of(fields.received_at);
    parsed.timestamp = corrected_timestamp(time_of(fields.timestamp), parsed.received_at, parsed.sent_at,
                                           parsed.original_timestamp);
    return parsed;
}

std::string_view reject_reason_code(RejectReason reason) noexcept {
    switch (reason) {
        case RejectReason::None:
            return "";
        case RejectReason::NotAnObject:
            return "not_an_object";
        case RejectReason::UnknownType:
            return "unknown_type";
        case RejectReason::TypeMismatch:
            return "type_mismatch";
        case RejectReason::DeletionRequest:
            return "deletion_request";
        case RejectReason::MissingIdentity:
            return "missing_identity";
        case RejectReason::MissingEvent:
            return "missing_event";
        case RejectReason::MissingPreviousId:
            return "missing_previous_id";
        case RejectReason::MissingGroupId:
            return "missing_group_id";
        case RejectReason::InvalidMessageId:
            return "invalid_message_id";
    }
    return "unknown";
}

ValidatedMessage validate_message(const MessageFields &fields, UnixMicros received_at,
                                  std::optional<MessageType> implied_type) noexcept {
    ValidatedMessage message;
    message.parsed = parse_message(fields);
    message.received_at = received_at;
    const ParsedMessage &parsed = message.parsed;

    std::optional<MessageType> type;
    if (fields.type.kind == FieldKind::Absent || fields.type.kind == FieldKind::Null) {
        if (!implied_type) {
            return rejected(message, RejectReason::UnknownType,
                            "the message has no \"type\" (track, identify, page, screen, group or alias)");
        }
        type = implied_type;
        message.parsed.type = message_type_name(*type);
    } else {
        if (fields.type.kind == FieldKind::String) {
            type = message_type_from_name(fields.type.text);
        }
        if (!type) {
            if (fields.type.kind == FieldKind::String && equals_ignoring_case(fields.type.text, "delete")) {
                return rejected(message, RejectReason::DeletionRequest,
                                "a user deletion request is not an event; it is kept here for your deletion "
                                "process");
            }
            return rejected(message, RejectReason::UnknownType,
                            "\"type\" must be one of track, identify, page, screen, group or alias");
        }
        if (implied_type && *implied_type != *type) {
            return rejected(message, RejectReason::TypeMismatch,
                            "the message's \"type\" differs from the type of the endpoint it was sent to");
        }
    }
    message.type = *type;

    if (fields.message_id.kind != FieldKind::Absent && fields.message_id.kind != FieldKind::Null) {
        if (!fields.message_id.is_text() || fields.message_id.text.size() > kMaxMessageIdLength) {
            return rejected(message, RejectReason::InvalidMessageId,
                            "\"messageId\" must be a string of at most 200 characters");
        }
    }
    if (!parsed.user_id && !parsed.anonymous_id) {
        return rejected(message, RejectReason::MissingIdentity,
                        "the message needs \"userId\" or \"anonymousId\"");
    }
    switch (*type) {
        case MessageType::Track:
            if (!parsed.event || parsed.event->empty()) {
                return rejected(message, RejectReason::MissingEvent,
                                "a track call needs a non-empty \"event\"");
            }
            break;
        case MessageType::Alias:
            if (!parsed.previous_id || !parsed.user_id) {
                return rejected(message, RejectReason::MissingPreviousId,
                                "an alias call needs \"previousId\" and \"userId\"");
            }
            break;
        case MessageType::Group:
            if (!parsed.group_id) {
                return rejected(message, RejectReason::MissingGroupId, "a group call needs \"groupId\"");
            }
            break;
        default:
            break;
    }

    message.parsed.timestamp = corrected_timestamp(time_of(fields.timestamp), received_at, parsed.sent_at,
                                                   parsed.original_timestamp);
    message.timestamp = message.parsed.timestamp.value_or(received_at);
    return message;
}

bool derive_message_id(std::string_view canonical_content, char out[36]) noexcept {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_Digest(canonical_content.data(), canonical_content.size(), digest, &length, EVP_sha256(),
                   nullptr) != 1 ||
        length < 16) {
        return false;
    }
    static const char digits[] = "0123456789abcdef";
    out[0] = 's';
    out[1] = 'w';
    out[2] = '-';
    for (int i = 0; i < 16; ++i) {
        out[3 + 2 * i] = digits[digest[i] >> 4];
        out[4 + 2 * i] = digits[digest[i] & 0xf];
    }
    out[35] = '\0';
    return true;
}

}  // namespace segment
