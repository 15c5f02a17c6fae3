// Unit tests of src/core/events_notification: the payload's shape, escaping, and the bound on its size.
#include "core/events_notification.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace {

using segment::events_notification;
using segment::SourceBatchCounts;

TEST(EventsNotification, CountsAndLastId) {
    const std::string_view name = "web";
    SourceBatchCounts counts;
    counts.accepted = 3;
    counts.duplicates = 1;
    counts.rejected = 2;
    counts.last_id = 9000000000;
    EXPECT_EQ(events_notification(&name, counts),
              R"({"source":"web","accepted":3,"duplicates":1,"rejected":2,"last_id":9000000000})");
}

TEST(EventsNotification, NothingStoredIsANullLastId) {
    const std::string_view name = "web";
    SourceBatchCounts counts;
    counts.duplicates = 4;
    EXPECT_EQ(events_notification(&name, counts),
              R"({"source":"web","accepted":0,"duplicates":4,"rejected":0,"last_id":null})");
}

TEST(EventsNotification, UnknownSourceIsNull) {
    EXPECT_EQ(events_notification(nullptr, SourceBatchCounts{}),
              R"({"source":null,"accepted":0,"duplicates":0,"rejected":0,"last_id":null})");
}

TEST(EventsNotification, NameIsEscaped) {
    const std::string_view name = "a\"b\\c\nd\x01";
    EXPECT_EQ(events_notification(&name, SourceBatchCounts{}),
              R"({"source":"a\"b\\c\u000ad\u0001","accepted":0,"duplicates":0,"rejected":0,"last_id":null})");
}

TEST(EventsNotification, LongNameIsCutAtACharacterBoundary) {
    // 1023 ASCII bytes, then "é" (2 bytes) straddling the limit: the cut keeps 1023 bytes, not half of é.
    const std::string long_name = std::string(segment::kNotifiedNameLimit - 1, 'x') + "\xC3\xA9" + "tail";
    const std::string_view name = long_name;
    const std::string payload = events_notification(&name, SourceBatchCounts{});
    EXPECT_EQ(payload, "{\"source\":\"" + std::string(segment::kNotifiedNameLimit - 1, 'x') +
                           "\",\"accepted\":0,\"duplicates\":0,\"rejected\":0,\"last_id\":null}");
}

TEST(EventsNotification, StaysUnderPostgresLimitWhateverTheName) {
    // Control characters are escaped as \u00XX (6 bytes each): the worst case for the escaped size.
    const std::string long_name(100000, '\x01');
    const std::string_view name = long_name;
    SourceBatchCounts counts;
    counts.accepted = counts.duplicates = counts.rejected = counts.last_id = INT64_MAX;
    EXPECT_LT(events_notification(&name, counts).size(), segment::kNotificationLimit);
    const std::string invalid(5000, '\xFF');  // bytes that are not UTF-8: each becomes \ufffd
    const std::string_view invalid_name = invalid;
    EXPECT_LT(events_notification(&invalid_name, counts).size(), segment::kNotificationLimit);
}

}  // namespace
