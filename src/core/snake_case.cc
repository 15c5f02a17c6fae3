// Segment's snake_case. See snake_case.h.
#include "core/snake_case.h"

namespace segment {
namespace {

bool is_lower(char c) {
    return c >= 'a' && c <= 'z';
}
bool is_upper(char c) {
    return c >= 'A' && c <= 'Z';
}
bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
bool is_word_byte(char c) {
    return is_lower(c) || is_upper(c) || is_digit(c);
}
bool is_lower_or_digit(char c) {
    return is_lower(c) || is_digit(c);
}

}  // namespace

size_t snake_case(std::string_view text, char *out) noexcept {
    const size_t length = text.size();
    // The prefix already in snake_case is kept byte for byte: lower-case letters, digits, and underscores
    // followed by a lower-case letter or digit.
    size_t at = 0;
    while (at < length && (is_lower_or_digit(text[at]) ||
                           (text[at] == '_' && at + 1 < length && is_lower_or_digit(text[at + 1])))) {
        ++at;
    }
    // A digit right before an upper-case letter starts the next word rather than ending this one.
    if (at < length && at > 0 && is_digit(text[at - 1])) {
        --at;
    }
    size_t written = 0;
    for (size_t i = 0; i < at; ++i) {
        out[written++] = text[i];
    }
    while (at < length) {
        if (!is_word_byte(text[at])) {
            ++at;
            continue;
        }
        if (written > 0) {
            out[written++] = '_';
        }
        while (at < length && (is_upper(text[at]) || is_digit(text[at]))) {
            out[written++] = is_upper(text[at]) ? static_cast<char>(text[at] - 'A' + 'a') : text[at];
            ++at;
        }
        while (at < length && is_lower_or_digit(text[at])) {
            out[written++] = text[at++];
        }
    }
    return written;
}

std::string snake_case(std::string_view text) {
    std::string result(snake_case_capacity(text.size()), '\0');
    result.resize(snake_case(text, result.data()));
    return result;
}

}  // namespace segment
