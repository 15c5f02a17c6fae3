// Unit tests of src/core/content_encoding: gzip and deflate bodies, the decoded-size limit, corrupt input.
#include "core/content_encoding.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <string>

namespace {

using segment::DecodedBody;

// Compresses with zlib: window_bits 31 gzip, 15 zlib, -15 raw deflate.
std::string compress(const std::string &data, int window_bits) {
    z_stream stream{};
    EXPECT_EQ(deflateInit2(&stream, Z_BEST_COMPRESSION, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY),
              Z_OK);
    std::string out(deflateBound(&stream, data.size()) + 32, '\0');
    stream.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(data.data()));
    stream.avail_in = static_cast<uInt>(data.size());
    stream.next_out = reinterpret_cast<Bytef *>(&out[0]);
    stream.avail_out = static_cast<uInt>(out.size());
    EXPECT_EQ(deflate(&stream, Z_FINISH), Z_STREAM_END);
    out.resize(stream.total_out);
    deflateEnd(&stream);
    return out;
}

const std::string kBody = R"({"batch":[{"type":"track","event":"Compressed","userId":"u"}]})";

TEST(DecodeBody, GzipDeflateAndRawDeflate) {
    for (const char *coding : {"gzip", "GZIP", "x-gzip"}) {
        const DecodedBody decoded = segment::decode_body(coding, compress(kBody, 31), 1 << 20);
        EXPECT_EQ(decoded.status, DecodedBody::Status::Ok) << coding;
        EXPECT_EQ(decoded.body, kBody);
    }
    EXPECT_EQ(segment::decode_body("deflate", compress(kBody, 15), 1 << 20).body, kBody);
    EXPECT_EQ(segment::decode_body("deflate", compress(kBody, -15), 1 << 20).body, kBody);
    EXPECT_EQ(segment::decode_body("identity", kBody, 1 << 20).body, kBody);
}

TEST(DecodeBody, ZipBombStopsAtTheLimit) {
    const std::string zeros(64 * 1024 * 1024, '0');  // 64 MB of zeros compress to about 64 kB
    const std::string bomb = compress(zeros, 31);
    EXPECT_LT(bomb.size(), 200u * 1024);
    const DecodedBody decoded = segment::decode_body("gzip", bomb, 1024 * 1024);
    EXPECT_EQ(decoded.status, DecodedBody::Status::TooLarge);
    EXPECT_TRUE(decoded.body.size() <= 1024 * 1024);
    EXPECT_EQ(segment::decode_body("gzip", compress(kBody, 31), kBody.size() - 1).status,
              DecodedBody::Status::TooLarge);
    EXPECT_EQ(segment::decode_body("gzip", compress(kBody, 31), kBody.size()).status,
              DecodedBody::Status::Ok);
}

TEST(DecodeBody, CorruptTruncatedAndUnknown) {
    std::string gzip = compress(kBody, 31);
    EXPECT_EQ(segment::decode_body("gzip", kBody, 1 << 20).status, DecodedBody::Status::Corrupt);
    EXPECT_EQ(segment::decode_body("gzip", gzip.substr(0, gzip.size() / 2), 1 << 20).status,
              DecodedBody::Status::Corrupt);
    gzip[gzip.size() / 2] ^= 0x55;
    EXPECT_NE(segment::decode_body("gzip", gzip, 1 << 20).status, DecodedBody::Status::Ok);
    const DecodedBody unknown = segment::decode_body("br", kBody, 1 << 20);
    EXPECT_EQ(unknown.status, DecodedBody::Status::Unsupported);
    EXPECT_FALSE(unknown.message.empty());
    EXPECT_EQ(segment::decode_body("gzip, gzip", kBody, 1 << 20).status, DecodedBody::Status::Unsupported);
}

}  // namespace
