// Incremental HTTP/1.1 request parser (RFC 9112). The head is copied once into the request's own buffer and
// parsed line by line as each line completes; the body is copied once into the request's body string
// (chunked framing is decoded on the way). It must never read beyond the bytes fed, never grow past the
// configured limits, and never guess at framing: anything ambiguous is an error and closes the connection.
#include "core/no_postgres.h"
#include "core/hex.h"

#include "core/http_request.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace segment {

namespace {

// Longest chunk-size line (size digits plus ignored extensions) we accept.
constexpr size_t kMaxChunkLineBytes = 4096;
// Largest body buffer reserved from Content-Length before any body byte has arrived.
constexpr uint64_t kMaxBodyReservation = 64 * 1024;

// token characters (RFC 9110 5.6.2), as a table because header names are scanned byte by byte.
struct TokenTable {
    bool allowed[256] = {};
    constexpr TokenTable() {
        for (int c = '0'; c <= '9'; ++c) {
            allowed[c] = true;
        }
        for (int c = 'a'; c <= 'z'; ++c) {
            allowed[c] = true;
            allowed[c - 'a' + 'A'] = true;
        }
        for (const char *p = "!#$%&'*+-.^_`|~"; *p != '\0'; ++p) {
            allowed[static_cast<unsigned char>(*p)] = true;
        }
    }
};
constexpr TokenTable kTokenTable;

constexpr bool is_tchar(unsigned char c) {
    return kTokenTable.allowed[c];
}

// Field values and chunk extensions: VCHAR, SP, HTAB and obs-text; no other control character.
constexpr bool is_field_value_char(unsigned char c) {
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

constexpr bool is_space_or_tab(char c) {
    return c == ' ' || c == '\t';
}

char to_lower_ascii(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string_view trim_space_or_tab(std::string_view s) {
    while (!s.empty() && is_space_or_tab(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && is_space_or_tab(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

// Calls fn(element) for each non-empty, trimmed element of a comma-separated field value.
template <typename Fn>
void for_each_list_element(std::string_view value, Fn fn) {
    while (true) {
        const size_t comma = value.find(',');
        const std::string_view element = trim_space_or_tab(value.substr(0, comma));
        if (!element.empty()) {
            fn(element);
        }
        if (comma == std::string_view::npos) {
            return;
        }
        value.remove_prefix(comma + 1);
    }
}

// 1*DIGIT, saturating at UINT64_MAX instead of overflowing (any saturated value is far above any limit).
bool parse_content_length(std::string_view s, uint64_t *out) {
    if (s.empty()) {
        return false;
    }
    uint64_t value = 0;
    for (const char c : s) {
        if (c < '0' || c > '9') {
            return false;
        }
        const uint64_t digit = static_cast<uint64_t>(c - '0');
        constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
        value = (value > (kMax - digit) / 10) ? kMax : value * 10 + digit;
    }
    *out = value;
    return true;
}

bool starts_with_ignore_case(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() && equals_ignore_case(s.substr(0, prefix.size()), prefix);
}

}  // namespace

bool equals_ignore_case(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (size_t i = 0; i < a.size(); ++i) {
        if (to_lower_ascii(a[i]) != to_lower_ascii(b[i])) {
            return false;
        }
    }
    return true;
}

bool percent_decode(std::string_view in, bool plus_as_space, std::string *out) {
    out->clear();
    out->reserve(in.size());
    for (size_t i = 0; i < in.size(); ++i) {
        const char c = in[i];
        if (c == '%') {
            if (in.size() - i < 3) {
                return false;
            }
            const int high = hex_digit_value(in[i + 1]);
            const int low = hex_digit_value(in[i + 2]);
            if (high < 0 || low < 0) {
                return false;
            }
            out->push_back(static_cast<char>(high * 16 + low));
            i += 2;
        } else if (c == '+' && plus_as_space) {
            out->push_back(' ');
        } else {
            out->push_back(c);
        }
    }
    return true;
}

bool parse_query(std::string_view query, std::vector<QueryParameter> *out) {
    out->clear();
    while (!query.empty()) {
        const size_t amp = query.find('&');
        const std::string_view piece = query.substr(0, amp);
        query.remove_prefix(amp == std::string_view::npos ? query.size() : amp + 1);
        if (piece.empty()) {
            continue;
        }
        const size_t eq = piece.find('=');
        QueryParameter parameter;
        if (!percent_decode(piece.substr(0, eq), true, &parameter.name)) {
            return false;
        }
        if (eq != std::string_view::npos && !percent_decode(piece.substr(eq + 1), true, &parameter.value)) {
            return false;
        }
        out->push_back(std::move(parameter));
    }
    return true;
}

std::optional<std::string_view> HttpRequest::header(std::string_view name) const {
    for (const HttpHeader &h : headers_) {
        if (equals_ignore_case(h.name, name)) {
            return h.value;
        }
    }
    return std::nullopt;
}

std::optional<std::string_view> HttpRequest::query_parameter(std::string_view name) const {
    for (const QueryParameter &p : query_parameters_) {
        if (p.name == name) {
            return std::string_view(p.value);
        }
    }
    return std::nullopt;
}

void HttpRequest::clear() {
    head_.clear();
    body_.clear();
    method_ = target_ = path_ = query_ = std::string_view();
    headers_.clear();
    query_parameters_.clear();
    version_minor_ = 1;
    keep_alive_ = false;
    expects_continue_ = false;
    chunked_ = false;
    content_length_ = 0;
}

HttpRequestParser::HttpRequestParser(HttpParserLimits limits) : limits_(limits) {}

void HttpRequestParser::reset() {
    if (phase_ == Phase::kError) {
        return;
    }
    request_.clear();
    state_ = HttpParseState::kNeedMore;
    phase_ = Phase::kHead;
    headers_complete_ = false;
    line_begin_ = 0;
    have_request_line_ = false;
    method_begin_ = method_size_ = target_begin_ = target_size_ = 0;
    header_offsets_.clear();
    remaining_ = 0;
    chunk_size_ = 0;
    chunk_line_bytes_ = 0;
    trailer_bytes_ = 0;
}

HttpRequest HttpRequestParser::take_request() {
    HttpRequest taken = std::move(request_);
    request_ = HttpRequest();
    reset();
    return taken;
}

size_t HttpRequestParser::fail(int status, const char *message, size_t consumed) {
    phase_ = Phase::kError;
    state_ = HttpParseState::kError;
    error_status_ = status;
    error_message_ = message;
    request_.keep_alive_ = false;
    return consumed;
}

void HttpRequestParser::complete() {
    if (request_.chunked_) {
        request_.content_length_ = request_.body_.size();
    }
    phase_ = Phase::kDone;
    state_ = HttpParseState::kComplete;
}

size_t HttpRequestParser::feed(const char *data, size_t len) {
    switch (phase_) {
        case Phase::kHead:
            return feed_head(data, len);
        case Phase::kDone:
        case Phase::kError:
            return 0;
        case Phase::kBodyPending:
            phase_ = request_.chunked_ ? Phase::kChunkSizeStart : Phase::kFixedBody;
            state_ = HttpParseState::kNeedMore;
            break;
        default:
            break;
    }
    if (phase_ != Phase::kFixedBody) {
        return feed_chunked(data, len);
    }
    const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, len));
    request_.body_.append(data, take);
    remaining_ -= take;
    if (remaining_ == 0) {
        complete();
    }
    return take;
}

// Copies whole lines into head_ and parses each as soon as its LF arrives, so a bad request line is refused
// before the rest of the head is read, and the size limit is enforced on every byte.
size_t HttpRequestParser::feed_head(const char *data, size_t len) {
    std::vector<char> &head = request_.head_;
    size_t pos = 0;
    while (pos < len) {
        const char *start = data + pos;
        const char *newline = static_cast<const char *>(std::memchr(start, '\n', len - pos));
        const size_t take = newline != nullptr ? static_cast<size_t>(newline - start) + 1 : len - pos;
        if (take > limits_.max_header_bytes - std::min(head.size(), limits_.max_header_bytes)) {
            if (have_request_line_) {
                return fail(431, "request header fields are too large", pos);
            }
            return fail(414, "request line is too long", pos);
        }
        head.insert(head.end(), start, start + take);
        pos += take;
        if (newline == nullptr) {
            break;
        }
        const size_t begin = line_begin_;
        line_begin_ = head.size();
        if (!process_head_line(begin, head.size()) || phase_ != Phase::kHead) {
            return pos;
        }
    }
    return pos;
}

// [begin, end) is one line including its LF; a CR right before the LF is part of the line ending.
bool HttpRequestParser::process_head_line(size_t begin, size_t end) {
    const char *head = request_.head_.data();
    size_t content_end = end - 1;
    if (content_end > begin && head[content_end - 1] == '\r') {
        --content_end;
    }
    if (!have_request_line_) {
        // RFC 9112 2.2: ignore empty lines before the request line (clients add a CRLF after a body).
        return content_end == begin || parse_request_line(begin, content_end);
    }
    if (content_end == begin) {
        return finish_head();
    }
    if (is_space_or_tab(head[begin])) {
        fail(400, "obsolete header line folding is not allowed", 0);
        return false;
    }
    if (header_offsets_.size() >= limits_.max_header_count) {
        fail(431, "too many request header fields", 0);
        return false;
    }
    return parse_header_line(begin, content_end);
}

bool HttpRequestParser::parse_request_line(size_t begin, size_t end) {
    const char *head = request_.head_.data();
    size_t i = begin;
    while (i < end && is_tchar(static_cast<unsigned char>(head[i]))) {
        ++i;
    }
    if (i == begin || i == end || head[i] != ' ') {
        fail(400, "malformed request line", 0);
        return false;
    }
    method_begin_ = static_cast<uint32_t>(begin);
    method_size_ = static_cast<uint32_t>(i - begin);
    const size_t target_begin = ++i;
    while (i < end && head[i] != ' ') {
        const unsigned char c = static_cast<unsigned char>(head[i]);
        if (c <= 0x20 || c >= 0x7f || c == '#') {
            fail(400, "invalid character in request target", 0);
            return false;
        }
        ++i;
    }
    if (i == target_begin || i == end) {
        fail(400, "malformed request line", 0);
        return false;
    }
    target_begin_ = static_cast<uint32_t>(target_begin);
    target_size_ = static_cast<uint32_t>(i - target_begin);
    const std::string_view version(head + i + 1, end - i - 1);
    if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[5] < '0' || version[5] > '9' ||
        version[6] != '.' || version[7] < '0' || version[7] > '9') {
        fail(400, "malformed HTTP version", 0);
        return false;
    }
    if (version[5] != '1') {
        fail(505, "only HTTP/1.0 and HTTP/1.1 are supported", 0);
        return false;
    }
    // RFC 9110 2.5: a higher 1.x minor version is processed as the highest one we implement.
    request_.version_minor_ = version[7] == '0' ? 0 : 1;

    const std::string_view target(head + target_begin, target_size_);
    const std::string_view method(head + begin, method_size_);
    if (target == "*") {
        if (method != "OPTIONS") {
            fail(400, "asterisk-form target is only allowed with OPTIONS", 0);
            return false;
        }
    } else if (target[0] != '/') {
        const size_t scheme = starts_with_ignore_case(target, "http://")    ? 7
                              : starts_with_ignore_case(target, "https://") ? 8
                                                                            : 0;
        if (scheme == 0 || scheme == target.size() || target[scheme] == '/' || target[scheme] == '?') {
            fail(400, "request target must be a path or an absolute http URI", 0);
            return false;
        }
    }
    have_request_line_ = true;
    return true;
}

bool HttpRequestParser::parse_header_line(size_t begin, size_t end) {
    const char *head = request_.head_.data();
    size_t i = begin;
    while (i < end && is_tchar(static_cast<unsigned char>(head[i]))) {
        ++i;
    }
    if (i == begin || i == end || head[i] != ':') {
        // Includes whitespace between the field name and the colon, which RFC 9112 5.1 requires rejecting.
        fail(400, "malformed header field", 0);
        return false;
    }
    const size_t name_end = i++;
    while (i < end && is_space_or_tab(head[i])) {
        ++i;
    }
    const size_t value_begin = i;
    for (; i < end; ++i) {
        if (!is_field_value_char(static_cast<unsigned char>(head[i]))) {
            fail(400, "invalid character in header field value", 0);
            return false;
        }
    }
    size_t value_end = end;
    while (value_end > value_begin && is_space_or_tab(head[value_end - 1])) {
        --value_end;
    }
    header_offsets_.push_back(
        HeaderOffsets{static_cast<uint32_t>(begin), static_cast<uint32_t>(name_end - begin),
                      static_cast<uint32_t>(value_begin), static_cast<uint32_t>(value_end - value_begin)});
    return true;
}

// The head is complete and head_ will not grow any more: build the views and decide the framing.
bool HttpRequestParser::finish_head() {
    HttpRequest &r = request_;
    const char *head = r.head_.data();
    r.method_ = std::string_view(head + method_begin_, method_size_);
    r.target_ = std::string_view(head + target_begin_, target_size_);
    r.headers_.reserve(header_offsets_.size());
    for (const HeaderOffsets &h : header_offsets_) {
        r.headers_.push_back(HttpHeader{std::string_view(head + h.name_begin, h.name_size),
                                        std::string_view(head + h.value_begin, h.value_size)});
    }

    std::string_view rest = r.target_;
    if (rest[0] != '/' && rest != "*") {
        // absolute-form: drop scheme and authority, keep the path (validated in parse_request_line).
        rest.remove_prefix(rest.find("://") + 3);
        const size_t path_begin = rest.find_first_of("/?");
        rest.remove_prefix(path_begin == std::string_view::npos ? rest.size() : path_begin);
    }
    const size_t question = rest.find('?');
    r.path_ = rest.substr(0, question);
    if (r.path_.empty()) {
        r.path_ = "/";
    }
    if (question != std::string_view::npos) {
        r.query_ = rest.substr(question + 1);
    }

    bool have_content_length = false;
    uint64_t content_length = 0;
    bool have_transfer_encoding = false;
    bool unsupported_coding = false;
    int chunked_count = 0;
    bool chunked_last = false;
    int host_count = 0;
    bool connection_close = false;
    bool connection_keep_alive = false;
    for (const HttpHeader &h : r.headers_) {
        if (equals_ignore_case(h.name, "content-length")) {
            uint64_t value = 0;
            if (!parse_content_length(h.value, &value)) {
                fail(400, "invalid Content-Length", 0);
                return false;
            }
            if (have_content_length && value != content_length) {
                fail(400, "conflicting Content-Length headers", 0);
                return false;
            }
            have_content_length = true;
            content_length = value;
        } else if (equals_ignore_case(h.name, "transfer-encoding")) {
            have_transfer_encoding = true;
            for_each_list_element(h.value, [&](std::string_view coding) {
                chunked_last = equals_ignore_case(coding, "chunked");
                if (chunked_last) {
                    ++chunked_count;
                } else {
                    unsupported_coding = true;
                }
            });
        } else if (equals_ignore_case(h.name, "connection")) {
            for_each_list_element(h.value, [&](std::string_view option) {
                connection_close |= equals_ignore_case(option, "close");
                connection_keep_alive |= equals_ignore_case(option, "keep-alive");
            });
        } else if (equals_ignore_case(h.name, "expect")) {
            r.expects_continue_ |= equals_ignore_case(h.value, "100-continue");
        } else if (equals_ignore_case(h.name, "host")) {
            ++host_count;
        }
    }

    if (r.version_minor_ == 1 && host_count != 1) {
        fail(400, host_count == 0 ? "missing Host header" : "multiple Host headers", 0);
        return false;
    }
    if (have_transfer_encoding) {
        // RFC 9112 6.1 and 6.3: these framings are ambiguous and a known request smuggling vector.
        if (have_content_length) {
            fail(400, "Content-Length and Transfer-Encoding must not both be present", 0);
            return false;
        }
        if (r.version_minor_ == 0) {
            fail(400, "Transfer-Encoding is not allowed in HTTP/1.0", 0);
            return false;
        }
        if (unsupported_coding) {
            fail(501, "only the chunked transfer coding is supported", 0);
            return false;
        }
        if (chunked_count != 1 || !chunked_last) {
            fail(400, "invalid Transfer-Encoding", 0);
            return false;
        }
        r.chunked_ = true;
    }
    if (have_content_length && content_length > limits_.max_body_bytes) {
        fail(413, "request body is too large", 0);
        return false;
    }
    if (!parse_query(r.query_, &r.query_parameters_)) {
        fail(400, "malformed percent-encoding in query", 0);
        return false;
    }
    if (r.version_minor_ == 0) {
        r.expects_continue_ = false;  // RFC 9110 10.1.1: ignore Expect in HTTP/1.0
        r.keep_alive_ = connection_keep_alive && !connection_close;
    } else {
        r.keep_alive_ = !connection_close;
    }
    r.content_length_ = content_length;
    header_offsets_.clear();
    headers_complete_ = true;

    if (r.chunked_ || content_length > 0) {
        remaining_ = content_length;
        // Reserve only a bounded amount up front: a client may announce a large body and never send it.
        r.body_.reserve(static_cast<size_t>(std::min<uint64_t>(content_length, kMaxBodyReservation)));
        phase_ = Phase::kBodyPending;
        state_ = HttpParseState::kHeadersComplete;
    } else {
        complete();
    }
    return true;
}

// Chunked decoding, one byte at a time for the framing and in bulk for chunk data.
size_t HttpRequestParser::feed_chunked(const char *data, size_t len) {
    std::string &body = request_.body_;
    size_t pos = 0;
    while (pos < len) {
        if (phase_ == Phase::kChunkData) {
            const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, len - pos));
            body.append(data + pos, take);
            pos += take;
            remaining_ -= take;
            if (remaining_ == 0) {
                phase_ = Phase::kChunkDataEnd;
            }
            continue;
        }
        const unsigned char c = static_cast<unsigned char>(data[pos]);
        switch (phase_) {
            case Phase::kChunkSizeStart:
            case Phase::kChunkSize: {
                const int digit = hex_digit_value(static_cast<char>(c));
                if (digit >= 0) {
                    if (phase_ == Phase::kChunkSizeStart) {
                        chunk_size_ = 0;
                        chunk_line_bytes_ = 0;
                        phase_ = Phase::kChunkSize;
                    }
                    // Decided on every digit, so an oversized chunk is refused before any of its data.
                    if (chunk_size_ > (std::numeric_limits<uint64_t>::max() >> 4)) {
                        return fail(413, "request body is too large", pos);
                    }
                    chunk_size_ = chunk_size_ * 16 + static_cast<uint64_t>(digit);
                    if (chunk_size_ > limits_.max_body_bytes - body.size()) {
                        return fail(413, "request body is too large", pos);
                    }
                } else if (phase_ == Phase::kChunkSizeStart) {
                    return fail(400, "invalid chunk size", pos);
                } else if (c == ';') {
                    phase_ = Phase::kChunkExtension;
                } else if (is_space_or_tab(static_cast<char>(c))) {
                    phase_ = Phase::kChunkSizeSpace;
                } else if (c == '\r') {
                    phase_ = Phase::kChunkSizeLf;
                } else if (c != '\n') {
                    return fail(400, "invalid chunk size", pos);
                }
                break;
            }
            case Phase::kChunkSizeSpace:
                if (c == ';') {
                    phase_ = Phase::kChunkExtension;
                } else if (!is_space_or_tab(static_cast<char>(c))) {
                    return fail(400, "invalid chunk size", pos);
                }
                break;
            case Phase::kChunkExtension:
                if (c == '\r') {
                    phase_ = Phase::kChunkSizeLf;
                } else if (c != '\n' && !is_field_value_char(c)) {
                    return fail(400, "invalid character in chunk extension", pos);
                }
                break;
            case Phase::kChunkSizeLf:
                if (c != '\n') {
                    return fail(400, "invalid chunk size line ending", pos);
                }
                break;
            case Phase::kChunkDataEnd:
                if (c == '\r') {
                    phase_ = Phase::kChunkDataLf;
                } else if (c == '\n') {
                    phase_ = Phase::kChunkSizeStart;
                } else {
                    return fail(400, "chunk data is longer than its size", pos);
                }
                break;
            case Phase::kChunkDataLf:
                if (c != '\n') {
                    return fail(400, "chunk data is longer than its size", pos);
                }
                phase_ = Phase::kChunkSizeStart;
                break;
            case Phase::kTrailerLineStart:
                if (c == '\r') {
                    phase_ = Phase::kTrailerEndLf;
                } else if (c == '\n') {
                    complete();
                    return pos + 1;
                } else if (is_tchar(c)) {
                    phase_ = Phase::kTrailerName;
                } else {
                    return fail(400, "malformed trailer field", pos);
                }
                break;
            case Phase::kTrailerName:
                if (c == ':') {
                    phase_ = Phase::kTrailerValue;
                } else if (!is_tchar(c)) {
                    return fail(400, "malformed trailer field", pos);
                }
                break;
            case Phase::kTrailerValue:
                if (c == '\r') {
                    phase_ = Phase::kTrailerLineLf;
                } else if (c == '\n') {
                    phase_ = Phase::kTrailerLineStart;
                } else if (!is_field_value_char(c)) {
                    return fail(400, "malformed trailer field", pos);
                }
                break;
            case Phase::kTrailerLineLf:
                if (c != '\n') {
                    return fail(400, "malformed trailer field", pos);
                }
                phase_ = Phase::kTrailerLineStart;
                break;
            case Phase::kTrailerEndLf:
                if (c != '\n') {
                    return fail(400, "malformed trailer section", pos);
                }
                complete();
                return pos + 1;
            default:
                return pos;  // unreachable: feed() only calls here in a chunked phase
        }

        // Bookkeeping after the byte: a finished size line, and the size of what we skip without storing.
        switch (phase_) {
            case Phase::kChunkSize:
            case Phase::kChunkSizeSpace:
            case Phase::kChunkExtension:
            case Phase::kChunkSizeLf:
                if (c == '\n') {
                    if (chunk_size_ == 0) {
                        phase_ = Phase::kTrailerLineStart;
                        trailer_bytes_ = 0;
                    } else {
                        remaining_ = chunk_size_;
                        phase_ = Phase::kChunkData;
                    }
                } else if (++chunk_line_bytes_ > kMaxChunkLineBytes) {
                    return fail(400, "chunk size line is too long", pos);
                }
                break;
            case Phase::kTrailerLineStart:
            case Phase::kTrailerName:
            case Phase::kTrailerValue:
            case Phase::kTrailerLineLf:
            case Phase::kTrailerEndLf:
                if (++trailer_bytes_ > limits_.max_header_bytes) {
                    return fail(431, "trailer fields are too large", pos);
                }
                break;
            default:
                break;
        }
        ++pos;
    }
    return pos;
}

}  // namespace segment
