// Unit tests of src/core/write_key: length, alphabet, and that keys do not repeat.
#include "core/write_key.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace {

TEST(WriteKey, UrlSafeAndUnique) {
    std::set<std::string> seen;
    for (int i = 0; i < 2000; ++i) {
        char key[segment::kWriteKeyLength + 1];
        ASSERT_TRUE(segment::generate_write_key(key));
        const std::string value(key);
        ASSERT_EQ(value.size(), segment::kWriteKeyLength);
        ASSERT_EQ(value.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                  std::string::npos);
        seen.insert(value);
    }
    EXPECT_EQ(seen.size(), 2000u);
}

}  // namespace
