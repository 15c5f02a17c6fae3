// ISO-8601 parsing for Segment timestamps. Hand-written rather than strptime/std::get_time because those
// depend on the locale and the TZ environment, know no fractions or offsets, and are slow.
#include "core/no_postgres.h"
#include "core/timestamp.h"

namespace segment {
namespace {

class Cursor {
  public:
    explicit Cursor(std::string_view text) : text_(text) {}
    bool done() const { return pos_ == text_.size(); }
    char peek() const { return done() ? '\0' : text_[pos_]; }
    bool accept(char c) {
        if (peek() == c) {
            ++pos_;
            return true;
        }
        return false;
    }
    // Exactly `count` decimal digits.
    bool digits(int count, int &value) {
        value = 0;
        for (int i = 0; i < count; ++i) {
            char c = peek();
            if (c < '0' || c > '9') {
                return false;
            }
            value = value * 10 + (c - '0');
            ++pos_;
        }
        return true;
    }
    // One or more digits; the first six count as microseconds, the rest are dropped.
    bool fraction(int &micros) {
        micros = 0;
        int seen = 0;
        while (peek() >= '0' && peek() <= '9') {
            if (seen < 6) {
                micros = micros * 10 + (peek() - '0');
            }
            ++seen;
            ++pos_;
        }
        for (int i = seen; i < 6; ++i) {
            micros *= 10;
        }
        return seen > 0;
    }

  private:
    std::string_view text_;
    size_t pos_ = 0;
};

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
    Cursor in(text);
    int year, month, day;
    if (!in.digits(4, year) || !in.accept('-') || !in.digits(2, month) || !in.accept('-') ||
        !in.digits(2, day)) {
        return std::nullopt;
    }
    if (year < 1 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month)) {
        return std::nullopt;
    }
    int hour = 0, minute = 0, second = 0, micros = 0, offset_seconds = 0;
    if (in.accept('T') || in.accept('t') || in.accept(' ')) {
        if (!in.digits(2, hour) || !in.accept(':') || !in.digits(2, minute)) {
            return std::nullopt;
        }
        if (in.accept(':')) {
            if (!in.digits(2, second)) {
                return std::nullopt;
            }
            if ((in.accept('.') || in.accept(',')) && !in.fraction(micros)) {
                return std::nullopt;
            }
        }
        if (hour > 23 || minute > 59 || second > 59) {
            return std::nullopt;
        }
        if (in.accept('Z') || in.accept('z')) {
            // UTC
        } else if (in.peek() == '+' || in.peek() == '-') {
            const int sign = in.peek() == '-' ? -1 : 1;
            in.accept(in.peek());
            int offset_hours, offset_minutes = 0;
            if (!in.digits(2, offset_hours)) {
                return std::nullopt;
            }
            if (in.accept(':')) {
                if (!in.digits(2, offset_minutes)) {
                    return std::nullopt;
                }
            } else if (!in.done() && !in.digits(2, offset_minutes)) {
                return std::nullopt;
            }
            if (offset_hours > 23 || offset_minutes > 59) {
                return std::nullopt;
            }
            offset_seconds = sign * (offset_hours * 3600 + offset_minutes * 60);
        }
    }
    if (!in.done()) {
        return std::nullopt;
    }
    const int64_t seconds =
        days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset_seconds;
    return seconds * 1000000 + micros;
}

}  // namespace segment
