// Unit tests of src/core/snake_case: Segment's warehouse names (the converter's documented input/output
// pairs, acronyms, digits, non-ASCII bytes) and the buffer bound.
#include "core/snake_case.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using segment::snake_case;

TEST(SnakeCase, ConverterPairs) {
    EXPECT_EQ(snake_case("sample text"), "sample_text");
    EXPECT_EQ(snake_case("sample-text"), "sample_text");
    EXPECT_EQ(snake_case("sample_text"), "sample_text");
    EXPECT_EQ(snake_case("sample___text"), "sample_text");
    EXPECT_EQ(snake_case("sampleText"), "sample_text");
    EXPECT_EQ(snake_case("inviteYourCustomersAddInvites"), "invite_your_customers_add_invites");
    EXPECT_EQ(snake_case("sample 2 Text"), "sample_2_text");
    EXPECT_EQ(snake_case("   sample   2    Text   "), "sample_2_text");
    EXPECT_EQ(snake_case("   $#$sample   2    Text   "), "sample_2_text");
    EXPECT_EQ(snake_case("SAMPLE 2 TEXT"), "sample_2_text");
    EXPECT_EQ(snake_case("___$$Base64Encode"), "base64_encode");
    EXPECT_EQ(snake_case("FOO:BAR$BAZ"), "foo_bar_baz");
    EXPECT_EQ(snake_case("FOO#BAR#BAZ"), "foo_bar_baz");
    EXPECT_EQ(snake_case("something.com"), "something_com");
    EXPECT_EQ(snake_case("$something%"), "something");
    EXPECT_EQ(snake_case("\xe2\x80\xa2\xc2\xb6\xc2\xa7\xc6\x92\xcb\x9a"
                         "foo\xcb\x99\xe2\x88\x86"),
              "foo");
}

TEST(SnakeCase, SegmentNames) {
    EXPECT_EQ(snake_case("Order Completed"), "order_completed");
    EXPECT_EQ(snake_case("Web App"), "web_app");
    EXPECT_EQ(snake_case("context.campaign.source"), "context_campaign_source");
    EXPECT_EQ(snake_case("context.userAgent"), "context_user_agent");
    EXPECT_EQ(snake_case("context.library.name"), "context_library_name");
    EXPECT_EQ(snake_case("address.street"), "address_street");
    EXPECT_EQ(snake_case("Product ID.sku"), "product_id_sku");
    EXPECT_EQ(snake_case("firstName"), "first_name");
    EXPECT_EQ(snake_case("already_snake_case_1"), "already_snake_case_1");
}

TEST(SnakeCase, AcronymsStayOneWordWithTheLowerCaseAfterThem) {
    EXPECT_EQ(snake_case("ABCDef"), "abcdef");
    EXPECT_EQ(snake_case("userID"), "user_id");
    EXPECT_EQ(snake_case("HTTPServer"), "httpserver");
    EXPECT_EQ(snake_case("fooBar2Baz"), "foo_bar2_baz");
    // A digit ending the kept prefix starts the next word when an upper-case letter follows.
    EXPECT_EQ(snake_case("foo2Bar"), "foo_2bar");
    EXPECT_EQ(snake_case("2Fast"), "2fast");
    // The same rule splits a kept prefix ending in a digit before any other byte, as the converter does.
    EXPECT_EQ(snake_case("2_2."), "2__2");
}

TEST(SnakeCase, UnderscoresAndEmptyResults) {
    EXPECT_EQ(snake_case(""), "");
    EXPECT_EQ(snake_case("$$$"), "");
    EXPECT_EQ(snake_case("\xe6\x97\xa5\xe6\x9c\xac"), "");
    // An underscore before a lower-case letter belongs to the kept prefix, even the first one.
    EXPECT_EQ(snake_case("_leading"), "_leading");
    EXPECT_EQ(snake_case("_Leading"), "leading");
    EXPECT_EQ(snake_case("trailing_"), "trailing");
    EXPECT_EQ(snake_case("a_B"), "a_b");
    EXPECT_EQ(snake_case("a__b"), "a_b");
}

TEST(SnakeCase, NeverWritesBeyondTheCapacity) {
    const std::vector<std::string> inputs = {"aBcDeFgH", "a1B2c3D4", "A-B-C-D-E", "x.Y.z.W", "1A1A1A1A"};
    for (const std::string &input : inputs) {
        std::string buffer(segment::snake_case_capacity(input.size()) + 8, '#');
        const size_t written = snake_case(input, buffer.data());
        EXPECT_LE(written, segment::snake_case_capacity(input.size())) << input;
        EXPECT_EQ(buffer.substr(segment::snake_case_capacity(input.size())), "########") << input;
    }
}

}  // namespace
