// Segment's snake_case, as its warehouses name schemas, tables and columns (the rules of the go-snakecase
// converter Segment's documentation names): bytes other than ASCII letters and digits separate words and are
// dropped; a run of upper-case letters and digits starts a word and is lower-cased, the lower-case letters
// and digits after it belong to the same word; words are joined with '_'. A leading run of lower-case
// letters, digits and inner underscores that are followed by a lower-case letter or digit is kept as it is.
// Pure C++; never includes Postgres; never throws from the buffer form.
#pragma once
#include "core/no_postgres.h"

#include <cstddef>
#include <string>
#include <string_view>

namespace segment {

// The most bytes snake_case can write for an input of `length` bytes (each word adds at most one '_').
constexpr size_t snake_case_capacity(size_t length) {
    return 2 * length + 1;
}

// Writes the snake_case of `text` to `out` (at least snake_case_capacity(text.size()) bytes) and returns its
// length; the result may be empty (no ASCII letter or digit in `text`). No terminating NUL is written.
size_t snake_case(std::string_view text, char *out) noexcept;

std::string snake_case(std::string_view text);

}  // namespace segment
