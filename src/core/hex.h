// The value of one hexadecimal digit, for the parsers of the core (percent escapes, chunk sizes, \u escapes).
// Pure C++; never includes Postgres.
#pragma once
#include "core/no_postgres.h"

namespace segment {

// 0-15 for '0'-'9', 'a'-'f', 'A'-'F'; -1 for any other character.
constexpr int hex_digit_value(char c) noexcept {
    return (c >= '0' && c <= '9')   ? c - '0'
           : (c >= 'a' && c <= 'f') ? c - 'a' + 10
           : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                    : -1;
}

}  // namespace segment
