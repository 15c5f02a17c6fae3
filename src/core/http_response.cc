// Response serialization and JSON error bodies. Output is appended to a caller-owned buffer so a connection
// can queue several pipelined answers in one write. It must never write bytes that change the framing of a
// response (header injection, a second Content-Length) and never emit a body that is not valid JSON text.
#include "core/no_postgres.h"

#include "core/http_response.h"

namespace segment {

namespace {

bool equals_ignore_case_ascii(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        x = (x >= 'A' && x <= 'Z') ? static_cast<char>(x - 'A' + 'a') : x;
        y = (y >= 'A' && y <= 'Z') ? static_cast<char>(y - 'A' + 'a') : y;
        if (x != y) {
            return false;
        }
    }
    return true;
}

bool is_token(std::string_view s) {
    if (s.empty()) {
        return false;
    }
    for (const char ch : s) {
        const unsigned char c = static_cast<unsigned char>(ch);
        const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!alnum && std::string_view("!#$%&'*+-.^_`|~").find(ch) == std::string_view::npos) {
            return false;
        }
    }
    return true;
}

void append_header(std::string_view name, std::string_view value, std::string *out) {
    out->append(name);
    out->append(": ");
    for (const char ch : value) {
        const unsigned char c = static_cast<unsigned char>(ch);
        // Control bytes (CR and LF above all) would end the header early: never let them through.
        out->push_back((c < 0x20 && c != '\t') || c == 0x7f ? ' ' : ch);
    }
    out->append("\r\n");
}

void append_unsigned(uint64_t value, std::string *out) {
    char digits[20];
    size_t n = 0;
    do {
        digits[n++] = static_cast<char>('0' + value % 10);
        value /= 10;
    } while (value != 0);
    while (n > 0) {
        out->push_back(digits[--n]);
    }
}

void append_two_digits(int value, std::string *out) {
    out->push_back(static_cast<char>('0' + value / 10));
    out->push_back(static_cast<char>('0' + value % 10));
}

}  // namespace

size_t utf8_sequence_length(std::string_view s, size_t i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t length;
    unsigned char low = 0x80, high = 0xbf;  // allowed range of the second byte
    if (c < 0x80) {
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        length = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        length = 3;
        low = c == 0xe0 ? 0xa0 : 0x80;
        high = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        length = 4;
        low = c == 0xf0 ? 0x90 : 0x80;
        high = c == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 0;
    }
    if (s.size() - i < length) {
        return 0;
    }
    for (size_t k = 1; k < length; ++k) {
        const unsigned char b = static_cast<unsigned char>(s[i + k]);
        if (k == 1 ? (b < low || b > high) : (b < 0x80 || b > 0xbf)) {
            return 0;
        }
    }
    return length;
}

std::string_view http_reason_phrase(int status) {
    switch (status) {
        case 100:
            return "Continue";
        case 200:
            return "OK";
        case 201:
            return "Created";
        case 202:
            return "Accepted";
        case 204:
            return "No Content";
        case 400:
            return "Bad Request";
        case 401:
            return "Unauthorized";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 408:
            return "Request Timeout";
        case 411:
            return "Length Required";
        case 413:
            return "Payload Too Large";
        case 414:
            return "URI Too Long";
        case 415:
            return "Unsupported Media Type";
        case 417:
            return "Expectation Failed";
        case 422:
            return "Unprocessable Content";
        case 429:
            return "Too Many Requests";
        case 431:
            return "Request Header Fields Too Large";
        case 500:
            return "Internal Server Error";
        case 501:
            return "Not Implemented";
        case 502:
            return "Bad Gateway";
        case 503:
            return "Service Unavailable";
        case 504:
            return "Gateway Timeout";
        case 505:
            return "HTTP Version Not Supported";
        default:
            return "Unknown";
    }
}

void append_http_response(const HttpResponse &response, std::string *out) {
    const int status = (response.status >= 100 && response.status <= 599) ? response.status : 500;
    const bool bodyless = status < 200 || status == 204 || status == 304;
    out->append("HTTP/1.1 ");
    append_unsigned(static_cast<uint64_t>(status), out);
    out->push_back(' ');
    out->append(http_reason_phrase(status));
    out->append("\r\n");
    if (!response.date.empty()) {
        append_header("Date", response.date, out);
    }
    if (!response.content_type.empty() && !bodyless) {
        append_header("Content-Type", response.content_type, out);
    }
    if (!bodyless) {
        out->append("Content-Length: ");
        append_unsigned(response.body.size(), out);
        out->append("\r\n");
    }
    if (response.close_connection) {
        out->append("Connection: close\r\n");
    } else if (response.keep_alive) {
        out->append("Connection: keep-alive\r\n");
    }
    if (response.retry_after_seconds.has_value()) {
        out->append("Retry-After: ");
        append_unsigned(*response.retry_after_seconds, out);
        out->append("\r\n");
    }
    if (!response.allow.empty()) {
        append_header("Allow", response.allow, out);
    }
    for (const auto &[name, value] : response.extra_headers) {
        if (!is_token(name) || equals_ignore_case_ascii(name, "content-length") ||
            equals_ignore_case_ascii(name, "transfer-encoding") ||
            equals_ignore_case_ascii(name, "connection")) {
            continue;
        }
        append_header(name, value, out);
    }
    out->append("\r\n");
    if (!bodyless) {
        out->append(response.body);
    }
}

std::string serialize_http_response(const HttpResponse &response) {
    std::string out;
    out.reserve(128 + response.body.size());
    append_http_response(response, &out);
    return out;
}

void append_json_string(std::string_view s, std::string *out) {
    static constexpr char kHex[] = "0123456789abcdef";
    out->push_back('"');
    size_t i = 0;
    while (i < s.size()) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (c == '"' || c == '\\') {
            out->push_back('\\');
            out->push_back(static_cast<char>(c));
            ++i;
        } else if (c < 0x20) {
            out->append("\\u00");
            out->push_back(kHex[c >> 4]);
            out->push_back(kHex[c & 0xf]);
            ++i;
        } else if (c < 0x80) {
            out->push_back(static_cast<char>(c));
            ++i;
        } else {
            const size_t length = utf8_sequence_length(s, i);
            if (length == 0) {
                out->append("\\ufffd");
                ++i;
            } else {
                out->append(s.substr(i, length));
                i += length;
            }
        }
    }
    out->push_back('"');
}

std::string json_error_body(std::string_view code, std::string_view message) {
    std::string out;
    out.reserve(48 + code.size() + message.size());
    out.append("{\"success\":false,\"error\":{\"code\":");
    append_json_string(code, &out);
    out.append(",\"message\":");
    append_json_string(message, &out);
    out.append("}}");
    return out;
}

HttpResponse json_error_response(int status, std::string_view code, std::string_view message,
                                 bool close_connection) {
    HttpResponse response;
    response.status = status;
    response.body = json_error_body(code, message);
    response.close_connection = close_connection;
    return response;
}

std::string format_http_date(int64_t unix_seconds) {
    static constexpr const char *kWeekdays[] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
    static constexpr const char *kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int64_t days = unix_seconds / 86400;
    int64_t seconds_of_day = unix_seconds % 86400;
    if (seconds_of_day < 0) {
        seconds_of_day += 86400;
        --days;
    }
    const int weekday = static_cast<int>(((days % 7) + 7) % 7);  // 1970-01-01 was a Thursday
    // Days since 1970-01-01 to a proleptic Gregorian date, counting in 400-year eras starting on March 1st.
    const int64_t shifted = days + 719468;
    const int64_t era = (shifted >= 0 ? shifted : shifted - 146096) / 146097;
    const int64_t day_of_era = shifted - era * 146097;
    const int64_t year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
    const int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    const int64_t month_index = (5 * day_of_year + 2) / 153;  // 0 = March
    const int day = static_cast<int>(day_of_year - (153 * month_index + 2) / 5 + 1);
    const int month = static_cast<int>(month_index < 10 ? month_index + 3 : month_index - 9);
    const int64_t year = year_of_era + era * 400 + (month <= 2 ? 1 : 0);

    std::string out;
    out.reserve(29);
    out.append(kWeekdays[weekday]);
    out.append(", ");
    append_two_digits(day, &out);
    out.push_back(' ');
    out.append(kMonths[month - 1]);
    out.push_back(' ');
    const std::string year_digits = std::to_string(year);
    out.append(year_digits.size() < 4 ? std::string(4 - year_digits.size(), '0') : std::string());
    out.append(year_digits);
    out.push_back(' ');
    append_two_digits(static_cast<int>(seconds_of_day / 3600), &out);
    out.push_back(':');
    append_two_digits(static_cast<int>(seconds_of_day / 60 % 60), &out);
    out.push_back(':');
    append_two_digits(static_cast<int>(seconds_of_day % 60), &out);
    out.append(" GMT");
    return out;
}

}  // namespace segment
