// Unit tests of src/core/message: typing, the skew rule, validation reasons, derived messageIds.
#include "core/message.h"

#include <gtest/gtest.h>

#include <string>

namespace {

using segment::Field;
using segment::FieldKind;
using segment::MessageFields;
using segment::RejectReason;

Field text(std::string_view value) {
    return Field{FieldKind::String, value};
}
Field number(std::string_view digits) {
    return Field{FieldKind::Number, digits};
}
Field kind(FieldKind k) {
    return Field{k, {}};
}

constexpr int64_t kSecond = 1000000;
const int64_t kReceived = *segment::parse_iso8601("2024-05-01T12:00:00Z");

MessageFields track() {
    MessageFields fields;
    fields.type = text("track");
    fields.event = text("Order Completed");
    fields.user_id = text("u1");
    fields.message_id = text("m1");
    return fields;
}

TEST(ParseMessage, TypesIdsAndTimes) {
    MessageFields fields = track();
    fields.type = text("TRACK");
    fields.user_id = number("12345");
    fields.anonymous_id = text("");
    fields.group_id = kind(FieldKind::Object);
    fields.original_timestamp = text("2024-05-01T11:59:50Z");
    fields.sent_at = text("2024-05-01T11:59:55Z");
    fields.received_at = text("2024-05-01T12:00:00Z");
    const segment::ParsedMessage parsed = segment::parse_message(fields);
    EXPECT_EQ(parsed.type, "track");
    EXPECT_EQ(parsed.user_id, "12345");
    EXPECT_FALSE(parsed.anonymous_id);
    EXPECT_FALSE(parsed.group_id);
    EXPECT_EQ(parsed.event, "Order Completed");
    EXPECT_EQ(parsed.timestamp, kReceived - 5 * kSecond);
}

TEST(ParseMessage, UnknownTypeIsKeptAsSent) {
    MessageFields fields;
    fields.type = text("Launch");
    EXPECT_EQ(segment::parse_message(fields).type, "Launch");
    fields.type = number("3");
    EXPECT_FALSE(segment::parse_message(fields).type);
}

TEST(CorrectedTimestamp, Rules) {
    EXPECT_EQ(segment::corrected_timestamp(1, 100, 50, 40), 1);
    EXPECT_EQ(segment::corrected_timestamp(std::nullopt, 100, 50, 40), 90);
    EXPECT_EQ(segment::corrected_timestamp(std::nullopt, std::nullopt, 50, 40), 40);
    EXPECT_EQ(segment::corrected_timestamp(std::nullopt, 100, std::nullopt, 40), 40);
    EXPECT_FALSE(segment::corrected_timestamp(std::nullopt, 100, 50, std::nullopt));
}

TEST(ValidateMessage, AcceptsAValidTrackAndDefaultsItsTime) {
    const segment::ValidatedMessage message = segment::validate_message(track(), kReceived);
    EXPECT_EQ(message.reason, RejectReason::None);
    EXPECT_EQ(message.type, segment::MessageType::Track);
    EXPECT_EQ(message.timestamp, kReceived);
    EXPECT_EQ(message.received_at, kReceived);
}

TEST(ValidateMessage, SkewRuleUsesOurReceivedAtNotTheMessages) {
    MessageFields fields = track();
    fields.original_timestamp = text("2030-01-01T00:00:00Z");
    fields.sent_at = text("2030-01-01T00:00:10Z");
    fields.received_at = text("1999-01-01T00:00:00Z");
    const segment::ValidatedMessage message = segment::validate_message(fields, kReceived);
    EXPECT_EQ(message.reason, RejectReason::None);
    EXPECT_EQ(message.timestamp, kReceived - 10 * kSecond);
}

TEST(ValidateMessage, Reasons) {
    struct Case {
        const char *name;
        void (*mutate)(MessageFields &);
        RejectReason reason;
    } cases[] = {
        {"no type", [](MessageFields &f) { f.type = {}; }, RejectReason::UnknownType},
        {"null type", [](MessageFields &f) { f.type = kind(FieldKind::Null); }, RejectReason::UnknownType},
        {"odd type", [](MessageFields &f) { f.type = text("launch"); }, RejectReason::UnknownType},
        {"numeric type", [](MessageFields &f) { f.type = number("1"); }, RejectReason::UnknownType},
        {"delete", [](MessageFields &f) { f.type = text("delete"); }, RejectReason::DeletionRequest},
        {"no ids", [](MessageFields &f) { f.user_id = {}; }, RejectReason::MissingIdentity},
        {"empty ids",
         [](MessageFields &f) {
             f.user_id = text("");
             f.anonymous_id = text("");
         },
         RejectReason::MissingIdentity},
        {"no event", [](MessageFields &f) { f.event = {}; }, RejectReason::MissingEvent},
        {"empty event", [](MessageFields &f) { f.event = text(""); }, RejectReason::MissingEvent},
        {"alias without previousId", [](MessageFields &f) { f.type = text("alias"); },
         RejectReason::MissingPreviousId},
        {"alias without userId",
         [](MessageFields &f) {
             f.type = text("alias");
             f.previous_id = text("p");
             f.user_id = {};
             f.anonymous_id = text("a");
         },
         RejectReason::MissingPreviousId},
        {"group without groupId", [](MessageFields &f) { f.type = text("group"); },
         RejectReason::MissingGroupId},
        {"object messageId", [](MessageFields &f) { f.message_id = kind(FieldKind::Object); },
         RejectReason::InvalidMessageId},
        {"bool messageId", [](MessageFields &f) { f.message_id = kind(FieldKind::Bool); },
         RejectReason::InvalidMessageId},
    };
    for (const Case &c : cases) {
        MessageFields fields = track();
        c.mutate(fields);
        const segment::ValidatedMessage message = segment::validate_message(fields, kReceived);
        EXPECT_EQ(message.reason, c.reason) << c.name;
        EXPECT_FALSE(message.detail.empty()) << c.name;
        EXPECT_FALSE(segment::reject_reason_code(message.reason).empty()) << c.name;
    }
}

TEST(ValidateMessage, LongMessageIdIsRefused) {
    MessageFields fields = track();
    const std::string longest(segment::kMaxMessageIdLength, 'x');
    const std::string too_long(segment::kMaxMessageIdLength + 1, 'x');
    fields.message_id = text(longest);
    EXPECT_EQ(segment::validate_message(fields, kReceived).reason, RejectReason::None);
    fields.message_id = text(too_long);
    EXPECT_EQ(segment::validate_message(fields, kReceived).reason, RejectReason::InvalidMessageId);
}

TEST(ValidateMessage, ValidCallsOfEveryType) {
    MessageFields identify;
    identify.type = text("identify");
    identify.anonymous_id = text("a");
    EXPECT_EQ(segment::validate_message(identify, kReceived).reason, RejectReason::None);
    MessageFields group = identify;
    group.type = text("group");
    group.group_id = number("7");
    EXPECT_EQ(segment::validate_message(group, kReceived).reason, RejectReason::None);
    MessageFields alias;
    alias.type = text("alias");
    alias.user_id = text("u");
    alias.previous_id = text("p");
    EXPECT_EQ(segment::validate_message(alias, kReceived).reason, RejectReason::None);
    MessageFields page = identify;
    page.type = text("Page");
    const segment::ValidatedMessage validated = segment::validate_message(page, kReceived);
    EXPECT_EQ(validated.reason, RejectReason::None);
    EXPECT_EQ(validated.parsed.type, "page");
}

TEST(ValidateMessage, ImpliedType) {
    MessageFields fields = track();
    fields.type = {};
    const segment::MessageType track_type = segment::MessageType::Track;
    const segment::ValidatedMessage implied = segment::validate_message(fields, kReceived, track_type);
    EXPECT_EQ(implied.reason, RejectReason::None);
    EXPECT_EQ(implied.parsed.type, "track");
    fields.type = text("page");
    EXPECT_EQ(segment::validate_message(fields, kReceived, track_type).reason, RejectReason::TypeMismatch);
    fields.type = text("Track");
    EXPECT_EQ(segment::validate_message(fields, kReceived, track_type).reason, RejectReason::None);
}

TEST(DeriveMessageId, DeterministicAndDistinct) {
    char first[36], again[36], other[36];
    ASSERT_TRUE(segment::derive_message_id(std::string_view("type\0track", 10), first));
    ASSERT_TRUE(segment::derive_message_id(std::string_view("type\0track", 10), again));
    ASSERT_TRUE(segment::derive_message_id(std::string_view("type\0page", 9), other));
    EXPECT_STREQ(first, again);
    EXPECT_STRNE(first, other);
    EXPECT_EQ(std::string(first).size(), 35u);
    EXPECT_EQ(std::string(first).substr(0, 3), "sw-");
    // sha256("") = e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
    char empty[36];
    ASSERT_TRUE(segment::derive_message_id("", empty));
    EXPECT_STREQ(empty, "sw-e3b0c44298fc1c149afbf4c8996fb924");
}

}  // namespace
