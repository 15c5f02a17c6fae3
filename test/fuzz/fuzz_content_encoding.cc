// libFuzzer target for segment::decode_body (gzip and deflate request bodies): never crashes, never decodes
// past its limit, and round-trips: the input's own bytes, compressed with zlib in each framing decode_body
// accepts, decode back to exactly those bytes (or to TooLarge when they exceed the limit). The first input
// byte picks the limit and the coding, so corrupt, truncated and bomb-like bodies are tried too.
#include "core/content_encoding.h"

#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

void require(bool condition) {
    if (!condition) {
        std::abort();
    }
}

// `plain` compressed with zlib: window_bits 15 + 16 gives gzip, 15 zlib-wrapped deflate, -15 raw deflate.
std::string compress(const std::string &plain, int window_bits) {
    z_stream stream{};
    require(deflateInit2(&stream, Z_BEST_SPEED, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    std::string out(deflateBound(&stream, plain.size()), '\0');
    stream.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(plain.data()));
    stream.avail_in = static_cast<uInt>(plain.size());
    stream.next_out = reinterpret_cast<Bytef *>(&out[0]);
    stream.avail_out = static_cast<uInt>(out.size());
    require(deflate(&stream, Z_FINISH) == Z_STREAM_END);
    out.resize(stream.total_out);
    deflateEnd(&stream);
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) {
        return 0;
    }
    const size_t limit = size_t(1) << (data[0] % 20);  // 1 byte .. 512 kB
    static const char *const kCodings[] = {"gzip", "x-gzip", "deflate", "DEFLATE", "identity", "br"};
    const char *coding = kCodings[(data[0] >> 5) % 6];
    // An exact-size heap copy so AddressSanitizer sees any read past the end.
    const std::string body(reinterpret_cast<const char *>(data) + 1, size - 1);

    // The input as a compressed body: whatever it decodes to stays within the limit.
    const segment::DecodedBody decoded = segment::decode_body(coding, body, limit);
    if (decoded.status == segment::DecodedBody::Status::Ok) {
        require(decoded.body.size() <= limit);
    } else {
        require(!decoded.message.empty());
    }

    // The input as plain bytes, compressed in every framing: decodes back exactly, or is too large.
    const struct {
        const char *coding;
        int window_bits;
    } framings[] = {{"gzip", 15 + 16}, {"deflate", 15}, {"deflate", -15}};
    for (const auto &framing : framings) {
        const segment::DecodedBody round =
            segment::decode_body(framing.coding, compress(body, framing.window_bits), limit);
        if (body.size() <= limit) {
            require(round.status == segment::DecodedBody::Status::Ok && round.body == body);
        } else {
            require(round.status == segment::DecodedBody::Status::TooLarge);
        }
    }
    return 0;
}
