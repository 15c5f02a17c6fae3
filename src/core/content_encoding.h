// Request bodies sent with Content-Encoding gzip or deflate (analytics-python, old mobile SDKs). Decoded with
// zlib under a hard limit on the decoded size, so a small compressed body cannot expand into all our memory.
// Pure C++; never includes Postgres.
#pragma once
#include "core/no_postgres.h"

#include <cstddef>
#include <string>
#include <string_view>

namespace segment {

struct DecodedBody {
    enum class Status { Ok, Unsupported, TooLarge, Corrupt } status = Status::Ok;
    std::string body;     // the decoded bytes when Ok
    std::string message;  // why not, otherwise
};

// `encoding` is the Content-Encoding header's value: "gzip", "x-gzip", "deflate" (zlib-wrapped, or raw
// deflate as some clients send it) or "identity" (case-insensitive, stacked codings are refused).
DecodedBody decode_body(std::string_view encoding, std::string_view body, size_t max_decoded_bytes);

}  // namespace segment
