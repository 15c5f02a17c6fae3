// Unit tests of src/core/timestamp: ISO-8601 as Segment SDKs write it, and garbage that must yield nothing.
#include "core/timestamp.h"

#include <gtest/gtest.h>

namespace {

constexpr int64_t kSecond = 1000000;

TEST(DaysFromCivil, KnownDates) {
    EXPECT_EQ(segment::days_from_civil(1970, 1, 1), 0);
    EXPECT_EQ(segment::days_from_civil(2000, 3, 1), 11017);
    EXPECT_EQ(segment::days_from_civil(1969, 12, 31), -1);
    EXPECT_EQ(segment::days_from_civil(2024, 2, 29), 19782);
}

TEST(ParseIso8601, SegmentFormats) {
    // 2024-05-01T12:34:56Z is 1714566896 seconds after the epoch (date -u -d ... +%s).
    const int64_t base = 1714566896 * kSecond;
    EXPECT_EQ(segment::parse_iso8601("2024-05-01T12:34:56Z"), base);
    EXPECT_EQ(segment::parse_iso8601("2024-05-01T12:34:56.789Z"), base + 789000);
    EXPECT_EQ(segment::parse_iso8601("2024-05-01T12:34:56.000123Z"), base + 123);
    EXPECT_EQ(segment::parse_iso8601("2024-05-01T12:34:56.1234569Z"), base + 123456);
    EXPECT_EQ(segment::parse_iso8601("2024-05-01T14:34:56+02:00"), base);
    EXPECT_EQ(segment::parse_iso8601("2024-05-01T14:34:56+0200"), base);
    EXPECT_EQ(segment::parse_iso8601("2024-05-01T14:34:56+02"), base);
    EXPECT_EQ(segment::parse_iso8601("2024-05-01T08:04:56-04:30"), base);
    EXPECT_EQ(segment::parse_iso8601("2024-05-01 12:34:56z"), base);
    EXPECT_EQ(segment::parse_iso8601("2024-05-01t12:34:56"), base);
    EXPECT_EQ(segment::parse_iso8601("2024-05-01T12:34Z"), base - 56 * kSecond);
    EXPECT_EQ(segment::parse_iso8601("2024-05-01"), base - (12 * 3600 + 34 * 60 + 56) * kSecond);
    EXPECT_EQ(segment::parse_iso8601("1970-01-01T00:00:00Z"), 0);
    EXPECT_EQ(segment::parse_iso8601("1969-12-31T23:59:59.5Z"), -kSecond / 2);
}

TEST(ParseIso8601, CalendarChecks) {
    EXPECT_TRUE(segment::parse_iso8601("2024-02-29T00:00:00Z"));
    EXPECT_TRUE(segment::parse_iso8601("2000-02-29T00:00:00Z"));
    EXPECT_FALSE(segment::parse_iso8601("1900-02-29T00:00:00Z"));
    EXPECT_FALSE(segment::parse_iso8601("2023-02-29T00:00:00Z"));
    EXPECT_FALSE(segment::parse_iso8601("2024-04-31T00:00:00Z"));
    EXPECT_FALSE(segment::parse_iso8601("2024-00-10T00:00:00Z"));
    EXPECT_FALSE(segment::parse_iso8601("2024-01-00T00:00:00Z"));
    EXPECT_FALSE(segment::parse_iso8601("0000-01-01T00:00:00Z"));
    EXPECT_FALSE(segment::parse_iso8601("2024-01-01T24:00:00Z"));
    EXPECT_FALSE(segment::parse_iso8601("2024-01-01T23:60:00Z"));
    EXPECT_FALSE(segment::parse_iso8601("2024-01-01T23:59:60Z"));
    EXPECT_FALSE(segment::parse_iso8601("2024-01-01T00:00:00+24:00"));
    EXPECT_FALSE(segment::parse_iso8601("2024-01-01T00:00:00+01:60"));
}

TEST(ParseIso8601, GarbageIsNothing) {
    for (const char *text :
         {"", "now", "2024", "2024-5-1", "2024-05-01T", "2024-05-01T1:00:00Z", "2024-05-01T12:00:00.Z",
          "2024-05-01T12:00:00ZZ", "2024-05-01T12:00:00+", "+2024-05-01", "2024-05-01T12:00:00 Z",
          "2024-05-01T12:00:00+1", "2024-05-01T12:00:00+01:0", "１９７０-01-01", "2024-05-01T12:00:00Z\n"}) {
        EXPECT_FALSE(segment::parse_iso8601(text)) << text;
    }
}

}  // namespace
