// ISO-8601 parsing for Segment timestamps. Hand-written rather than strptime/std::get_time because those
// depend on the locale and the TZ environment, know no fractions or offsets, and are slow.
#include "core/no_postgres.h"
#include "core/timestamp.h"

namespace segment {
namespace {

// Value of `count` decimal digits at text[pos], or -1. Positions are fixed in ISO-8601's extended format, so
// the parser indexes instead of scanning: this runs four times for every message stored.
inline int digits_at(std::string_view text, size_t pos, size_t count) {
    if (pos + count > text.size()) {
        return -1;
    }
    int value = 0;
    for (size_t i = 0; i < count; ++i) {
        const unsigned digit = static_cast<unsigned>(static_cast<unsigned char>(text[pos + i]) - '0');
        if (digit > 9) {
            return -1;
        }
        value = value * 10 + static_cast<int>(digit);
    }
    return value;
}

inline bool char_at(std::string_view text, size_t pos, char c) {
    return pos < text.size() && text[pos] == c;
}

bool is_leap(int year) {
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int days_in_month(int year, int month) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return month == 2 && is_leap(year) ? 29 : days[month - 1];
}

}  // namespace

int64_t days_from_civil(int64_t year, unsigned month, unsigned day) noexcept {
    // Shift the year to start in March so the leap day is the last day of the year.
    year -= month <= 2;
    const int64_t era = (year >= 0 ? year : year - 399) / 400;
    const unsigned year_of_era = static_cast<unsigned>(year - era * 400);
    const unsigned day_of_year = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
    const unsigned day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + static_cast<int64_t>(day_of_era) - 719468;
}

std::optional<UnixMicros> parse_iso8601(std::string_view text) noexcept {
    // YYYY-MM-DD
    const int year = digits_at(text, 0, 4);
    const int month = digits_at(text, 5, 2);
    const int day = digits_at(text, 8, 2);
    if (year < 1 || month < 1 || month > 12 || day < 1 || !char_at(text, 4, '-') || !char_at(text, 7, '-') ||
        day > days_in_month(year, month)) {
        return std::nullopt;
    }
    int hour = 0, minute = 0, second = 0, micros = 0, offset_seconds = 0;
    size_t pos = 10;
    if (pos < text.size()) {
        const char separator = text[pos];
        if (separator != 'T' && separator != 't' && separator != ' ') {
            return std::nullopt;
        }
        // hh:mm[:ss[.fraction]]
        hour = digits_at(text, 11, 2);
        minute = digits_at(text, 14, 2);
        if (hour < 0 || minute < 0 || !char_at(text, 13, ':')) {
            return std::nullopt;
        }
        pos = 16;
        if (char_at(text, pos, ':')) {
            second = digits_at(text, 17, 2);
            if (second < 0) {
                return std::nullopt;
            }
            pos = 19;
            if (char_at(text, pos, '.') || char_at(text, pos, ',')) {
                // One or more digits; the first six count as microseconds, the rest are dropped.
                ++pos;
                const size_t first = pos;
                while (pos < text.size() &&
                       static_cast<unsigned>(static_cast<unsigned char>(text[pos]) - '0') <= 9u) {
                    if (pos - first < 6) {
                        micros = micros * 10 + (text[pos] - '0');
                    }
                    ++pos;
                }
                if (pos == first) {
                    return std::nullopt;
                }
                for (size_t i = pos - first; i < 6; ++i) {
                    micros *= 10;
                }
            }
        }
        if (hour > 23 || minute > 59 || second > 59) {
            return std::nullopt;
        }
        // Z, or ±hh[:mm] / ±hhmm, or nothing (UTC)
        if (char_at(text, pos, 'Z') || char_at(text, pos, 'z')) {
            ++pos;
        } else if (char_at(text, pos, '+') || char_at(text, pos, '-')) {
            const int sign = text[pos] == '-' ? -1 : 1;
            const int offset_hours = digits_at(text, pos + 1, 2);
            int offset_minutes = 0;
            pos += 3;
            if (char_at(text, pos, ':')) {
                offset_minutes = digits_at(text, pos + 1, 2);
                pos += 3;
            } else if (pos < text.size()) {
                offset_minutes = digits_at(text, pos, 2);
                pos += 2;
            }
            if (offset_hours < 0 || offset_hours > 23 || offset_minutes < 0 || offset_minutes > 59) {
                return std::nullopt;
            }
            offset_seconds = sign * (offset_hours * 3600 + offset_minutes * 60);
        }
    }
    if (pos != text.size()) {
        return std::nullopt;
    }
    const int64_t seconds =
        days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset_seconds;
    return seconds * 1000000 + micros;
}

}  // namespace segment
