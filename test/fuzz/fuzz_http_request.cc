// libFuzzer target for HttpRequestParser. The input (after two configuration bytes) is parsed as a stream of
// pipelined requests three ways: all at once, byte by byte, and in random-sized reads; all three must agree,
// and every request must satisfy the framing invariants (consumed <= fed, body size = Content-Length or the
// sum of the chunks, limits respected). Each read is copied into an exact-size heap block so ASan reports any
// read past the bytes fed. It must never depend on anything outside src/core.
#include "core/no_postgres.h"

#include "core/hex.h"
#include "core/http_request.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using segment::HttpParserLimits;
using segment::HttpParseState;
using segment::HttpRequest;
using segment::HttpRequestParser;

namespace {

#define FUZZ_CHECK(condition)                                                                  \
    do {                                                                                       \
        if (!(condition)) {                                                                    \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #condition); \
            std::abort();                                                                      \
        }                                                                                      \
    } while (0)

struct RequestSummary {
    std::string method, target, path, query, body;
    std::vector<std::pair<std::string, std::string>> headers, query_parameters;
    int version_minor;
    bool keep_alive, expects_continue, chunked;
    uint64_t content_length;
    size_t head_bytes;

    bool operator==(const RequestSummary &o) const {
        return method == o.method && target == o.target && path == o.path && query == o.query &&
               body == o.body && headers == o.headers && query_parameters == o.query_parameters &&
               version_minor == o.version_minor && keep_alive == o.keep_alive &&
               expects_continue == o.expects_continue && chunked == o.chunked &&
               content_length == o.content_length && head_bytes == o.head_bytes;
    }
};

struct Outcome {
    std::vector<RequestSummary> requests;
    HttpParseState final_state = HttpParseState::kNeedMore;
    int error_status = 0;
    std::string error_message;
    size_t consumed = 0;
};

bool is_token_char(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

// A deliberately simple, whole-buffer chunked decoder, independent of the parser's state machine. Only called
// on bodies the parser accepted, so it can assume well-formed framing and checks what it relies on.
std::string reference_dechunk(std::string_view raw) {
    std::string out;
    size_t pos = 0;
    while (true) {
        uint64_t size = 0;
        size_t digits = 0;
        while (pos < raw.size() && segment::hex_digit_value(raw[pos]) >= 0) {
            FUZZ_CHECK(size <= (UINT64_MAX >> 4));
            size = size * 16 + static_cast<uint64_t>(segment::hex_digit_value(raw[pos]));
            ++pos;
            ++digits;
        }
        FUZZ_CHECK(digits > 0);
        const size_t newline = raw.find('\n', pos);
        FUZZ_CHECK(newline != std::string_view::npos);
        pos = newline + 1;
        if (size == 0) {
            FUZZ_CHECK(raw.back() == '\n');  // the trailer section ends with an empty line
            return out;
        }
        FUZZ_CHECK(raw.size() - pos >= size);
        out.append(raw.substr(pos, size));
        pos += size;
        if (pos < raw.size() && raw[pos] == '\r') {
            ++pos;
        }
        FUZZ_CHECK(pos < raw.size() && raw[pos] == '\n');
        ++pos;
    }
}

void check_head(const HttpRequest &r, const HttpParserLimits &limits) {
    FUZZ_CHECK(r.head_bytes() <= limits.max_header_bytes);
    FUZZ_CHECK(!r.method().empty());
    FUZZ_CHECK(!r.path().empty());
    FUZZ_CHECK(r.path() == "*" || r.path()[0] == '/');
    FUZZ_CHECK(r.version_minor() == 0 || r.version_minor() == 1);
    FUZZ_CHECK(!r.expects_continue() || r.version_minor() == 1);
    FUZZ_CHECK(r.headers().size() <= limits.max_header_count);
    for (const auto &h : r.headers()) {
        FUZZ_CHECK(!h.name.empty());
        for (const char c : h.name) {
            FUZZ_CHECK(is_token_char(static_cast<unsigned char>(c)));
        }
        if (!h.value.empty()) {
            FUZZ_CHECK(h.value.front() != ' ' && h.value.front() != '\t');
            FUZZ_CHECK(h.value.back() != ' ' && h.value.back() != '\t');
        }
        FUZZ_CHECK(h.value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos);
        if (segment::equals_ignore_case(h.name, "connection") &&
            segment::equals_ignore_case(h.value, "close")) {
            FUZZ_CHECK(!r.keep_alive());
        }
    }
    if (!r.chunked()) {
        FUZZ_CHECK(r.content_length() <= limits.max_body_bytes);
    }
    if (!r.headers().empty()) {
        FUZZ_CHECK(r.header(r.headers().front().name) == r.headers().front().value);
    }
    if (!r.query_parameters().empty()) {
        const auto &first = r.query_parameters().front();
        FUZZ_CHECK(r.query_parameter(first.name) == std::string_view(first.value));
    }
    std::vector<segment::QueryParameter> decoded;
    FUZZ_CHECK(segment::parse_query(r.query(), &decoded));
    FUZZ_CHECK(decoded.size() == r.query_parameters().size());
}

// raw is exactly the bytes the parser consumed for this request.
RequestSummary check_complete(const HttpRequest &r, std::string_view raw, const HttpParserLimits &limits) {
    check_head(r, limits);
    FUZZ_CHECK(r.head_bytes() <= raw.size());
    const std::string_view raw_head = raw.substr(0, r.head_bytes());
    FUZZ_CHECK(raw_head.find(std::string(r.method()) + " " + std::string(r.target()) + " HTTP/") !=
               std::string_view::npos);
    FUZZ_CHECK(r.body().size() <= limits.max_body_bytes);
    FUZZ_CHECK(r.body().size() == r.content_length());
    const std::string_view raw_body = raw.substr(r.head_bytes());
    if (r.chunked()) {
        FUZZ_CHECK(reference_dechunk(raw_body) == r.body());
    } else {
        FUZZ_CHECK(raw_body == r.body());
    }

    RequestSummary s;
    s.method = r.method();
    s.target = r.target();
    s.path = r.path();
    s.query = r.query();
    s.body = r.body();
    for (const auto &h : r.headers()) {
        s.headers.emplace_back(h.name, h.value);
    }
    for (const auto &p : r.query_parameters()) {
        s.query_parameters.emplace_back(p.name, p.value);
    }
    s.version_minor = r.version_minor();
    s.keep_alive = r.keep_alive();
    s.expects_continue = r.expects_continue();
    s.chunked = r.chunked();
    s.content_length = r.content_length();
    s.head_bytes = r.head_bytes();
    return s;
}

// Read sizes: 0 = everything at once, 1 = one byte at a time, otherwise pseudo-random sizes from the seed.
class ReadSizes {
  public:
    ReadSizes(int mode, uint32_t seed) : mode_(mode), state_(seed * 2654435761u + 1) {}
    size_t next(size_t left) {
        if (mode_ == 0) {
            return left;
        }
        if (mode_ == 1) {
            return 1;
        }
        state_ ^= state_ << 13;
        state_ ^= state_ >> 17;
        state_ ^= state_ << 5;
        const size_t size = (state_ & 7) == 0 ? (state_ >> 8) % 4096 + 1 : (state_ >> 8) % 16 + 1;
        return size < left ? size : left;
    }

  private:
    int mode_;
    uint32_t state_;
};

Outcome run(std::string_view input, const HttpParserLimits &limits, ReadSizes sizes, uint32_t seed) {
    Outcome outcome;
    HttpRequestParser parser(limits);
    size_t offset = 0;         // bytes consumed by the parser
    size_t available = 0;      // bytes "read from the socket" so far
    size_t request_start = 0;  // where the current request began
    bool take = (seed & 1) != 0;
    while (true) {
        const HttpParseState state = parser.state();
        if (state == HttpParseState::kComplete) {
            const std::string_view raw = input.substr(request_start, offset - request_start);
            outcome.requests.push_back(check_complete(parser.request(), raw, limits));
            FUZZ_CHECK(parser.feed(input.data() + offset, available - offset) == 0);
            // Exercise both ways of moving on to the next pipelined request.
            if (take) {
                HttpRequest taken = parser.take_request();
                FUZZ_CHECK(taken.body().size() == outcome.requests.back().body.size());
            } else {
                parser.reset();
            }
            take = !take;
            FUZZ_CHECK(parser.state() == HttpParseState::kNeedMore && !parser.headers_complete());
            request_start = offset;
            continue;
        }
        if (state == HttpParseState::kError) {
            break;
        }
        if (state == HttpParseState::kHeadersComplete) {
            FUZZ_CHECK(parser.headers_complete());
            check_head(parser.request(), limits);
        } else if (offset == available) {
            if (available == input.size()) {
                break;
            }
            available += sizes.next(input.size() - available);
        }
        // An exact-size copy of the unconsumed bytes, so a read past them is a heap overflow ASan reports.
        const size_t pending = available - offset;
        std::unique_ptr<char[]> window(new char[pending + (pending == 0 ? 1 : 0)]);
        std::memcpy(window.get(), input.data() + offset, pending);
        const size_t consumed = parser.feed(window.get(), pending);
        FUZZ_CHECK(consumed <= pending);
        if (parser.state() == HttpParseState::kNeedMore) {
            FUZZ_CHECK(consumed == pending);
        }
        offset += consumed;
    }
    outcome.final_state = parser.state();
    outcome.consumed = offset;
    if (outcome.final_state == HttpParseState::kError) {
        const int status = parser.error_status();
        FUZZ_CHECK(status == 400 || status == 413 || status == 414 || status == 431 || status == 501 ||
                   status == 505);
        FUZZ_CHECK(!parser.error_message().empty());
        FUZZ_CHECK(!parser.keep_alive());
        outcome.error_status = status;
        outcome.error_message = parser.error_message();
        // Errors are sticky.
        parser.reset();
        FUZZ_CHECK(parser.feed(input.data(), input.size()) == 0);
        FUZZ_CHECK(parser.state() == HttpParseState::kError && parser.error_status() == status);
    } else {
        FUZZ_CHECK(outcome.final_state == HttpParseState::kNeedMore);
        FUZZ_CHECK(offset == input.size());
    }
    return outcome;
}

void check_same(const Outcome &a, const Outcome &b) {
    FUZZ_CHECK(a.requests.size() == b.requests.size());
    for (size_t i = 0; i < a.requests.size(); ++i) {
        FUZZ_CHECK(a.requests[i] == b.requests[i]);
    }
    FUZZ_CHECK(a.final_state == b.final_state);
    FUZZ_CHECK(a.error_status == b.error_status);
    FUZZ_CHECK(a.error_message == b.error_message);
    if (a.final_state != HttpParseState::kError) {
        FUZZ_CHECK(a.consumed == b.consumed);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) {
        return 0;
    }
    // Byte 0 picks the limits (small ones reach 413/414/431 paths), byte 1 seeds the read sizes.
    HttpParserLimits limits;
    static constexpr size_t kHeaderBytes[] = {48, 200, 1024, 16 * 1024};
    static constexpr uint64_t kBodyBytes[] = {0, 16, 1024, UINT64_MAX};
    limits.max_header_bytes = kHeaderBytes[data[0] & 3];
    limits.max_body_bytes = kBodyBytes[(data[0] >> 2) & 3];
    limits.max_header_count = (data[0] & 0x10) != 0 ? 3 : 100;
    const uint32_t seed = data[1];
    const std::string_view input(reinterpret_cast<const char *>(data) + 2, size - 2);

    const Outcome whole = run(input, limits, ReadSizes(0, seed), seed);
    const Outcome bytes = run(input, limits, ReadSizes(1, seed), seed + 1);
    const Outcome random = run(input, limits, ReadSizes(2, seed), seed);
    check_same(whole, bytes);
    check_same(whole, random);
    return 0;
}
