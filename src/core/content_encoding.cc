// zlib decoding of request bodies. See content_encoding.h.
#include "core/no_postgres.h"
#include "core/content_encoding.h"

#include <zlib.h>

#include "core/http_request.h"

namespace segment {
namespace {

// Inflates with the given window bits (31: gzip, 15: zlib, -15: raw deflate). False with a message on
// failure.
bool inflate_with(int window_bits, std::string_view input, size_t limit, DecodedBody &result) {
    z_stream stream{};
    if (inflateInit2(&stream, window_bits) != Z_OK) {
        result.status = DecodedBody::Status::Corrupt;
        result.message = "could not start zlib";
        return false;
    }
    result.body.clear();
    stream.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(input.data()));
    stream.avail_in = static_cast<uInt>(input.size());
    char chunk[64 * 1024];
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
        stream.next_out = reinterpret_cast<Bytef *>(chunk);
        stream.avail_out = sizeof chunk;
        rc = inflate(&stream, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END) {
            inflateEnd(&stream);
            result.status = DecodedBody::Status::Corrupt;
            result.message =
                std::string("the compressed body is corrupt: ") + (stream.msg ? stream.msg : "truncated");
            return false;
        }
        const size_t produced = sizeof chunk - stream.avail_out;
        if (result.body.size() + produced > limit) {
            inflateEnd(&stream);
            result.status = DecodedBody::Status::TooLarge;
            result.message = "the decompressed body is larger than segment_webhook.max_request_size";
            return false;
        }
        result.body.append(chunk, produced);
        if (rc == Z_OK && produced == 0 && stream.avail_in == 0) {
            inflateEnd(&stream);
            result.status = DecodedBody::Status::Corrupt;
            result.message = "the compressed body is truncated";
            return false;
        }
    }
    inflateEnd(&stream);
    result.status = DecodedBody::Status::Ok;
    return true;
}

}  // namespace

DecodedBody decode_body(std::string_view encoding, std::string_view body, size_t max_decoded_bytes) {
    DecodedBody result;
    if (encoding.empty() || equals_ignore_case(encoding, "identity")) {
        if (body.size() > max_decoded_bytes) {
            result.status = DecodedBody::Status::TooLarge;
            result.message = "the body is larger than segment_webhook.max_request_size";
            return result;
        }
        result.body.assign(body.data(), body.size());
        return result;
    }
    if (equals_ignore_case(encoding, "gzip") || equals_ignore_case(encoding, "x-gzip")) {
        inflate_with(16 + MAX_WBITS, body, max_decoded_bytes, result);
        return result;
    }
    if (equals_ignore_case(encoding, "deflate")) {
        // RFC 9110 says zlib-wrapped; some clients send raw deflate. Try the standard first.
        if (!inflate_with(MAX_WBITS, body, max_decoded_bytes, result) &&
            result.status == DecodedBody::Status::Corrupt) {
            inflate_with(-MAX_WBITS, body, max_decoded_bytes, result);
        }
        return result;
    }
    result.status = DecodedBody::Status::Unsupported;
    result.message =
        "Content-Encoding \"" + std::string(encoding) + "\" is not supported (gzip, deflate, identity)";
    return result;
}

}  // namespace segment
