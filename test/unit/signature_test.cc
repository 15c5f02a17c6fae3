// Unit tests of src/core/signature: HMAC-SHA1 against RFC 2202's published vectors, hex handling, the
// first-array-element rule of Segment's Actions batches, and verification edge cases.
#include "core/signature.h"

#include <gtest/gtest.h>

#include <string>

namespace {

std::string hex_hmac(const std::string &key, const std::string &body) {
    segment::Sha1Digest digest;
    EXPECT_TRUE(segment::hmac_sha1(key, body, digest));
    char hex[41];
    segment::digest_to_hex(digest, hex);
    return hex;
}

TEST(HmacSha1, MatchesRfc2202Vectors) {
    EXPECT_EQ(hex_hmac(std::string(20, '\x0b'), "Hi There"), "b617318655057264e28bc0b6fb378c8ef146be00");
    EXPECT_EQ(hex_hmac("Jefe", "what do ya want for nothing?"), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    EXPECT_EQ(hex_hmac(std::string(20, '\xaa'), std::string(50, '\xdd')),
              "125d7342b9ac11cd91a39af48aa17b4f63f175d3");
    EXPECT_EQ(hex_hmac(std::string(80, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First"),
              "aa4ae5e15272d00e95705637ce8a3b55ed402112");
}

TEST(HmacSha1, ReusedContextGivesIndependentResults) {
    // The context is cached per thread; a second key must not inherit anything from the first.
    const std::string first = hex_hmac("key-one", "body");
    const std::string second = hex_hmac("key-two", "body");
    EXPECT_NE(first, second);
    EXPECT_EQ(hex_hmac("key-one", "body"), first);
}

TEST(HmacSha1, EmptyKeyAndEmptyBody) {
    // openssl dgst -sha1 -hmac '' </dev/null
    EXPECT_EQ(hex_hmac("", ""), "fbdb1d1b18aa6c08324b7d64b71fb76370690e1d");
}

TEST(SignatureHex, AcceptsBothCasesRejectsEverythingElse) {
    segment::Sha1Digest digest;
    EXPECT_TRUE(segment::parse_signature_hex("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79", digest));
    EXPECT_EQ(digest[0], 0xef);
    EXPECT_EQ(digest[19], 0x79);
    EXPECT_TRUE(segment::parse_signature_hex("EFFCDF6AE5EB2FA2D27416D5F184DF9C259A7C79", digest));
    EXPECT_EQ(digest[0], 0xef);
    EXPECT_FALSE(segment::parse_signature_hex("effcdf6ae5eb2fa2d27416d5f184df9c259a7c7", digest));
    EXPECT_FALSE(segment::parse_signature_hex("effcdf6ae5eb2fa2d27416d5f184df9c259a7c790", digest));
    EXPECT_FALSE(segment::parse_signature_hex("gffcdf6ae5eb2fa2d27416d5f184df9c259a7c79", digest));
    EXPECT_FALSE(segment::parse_signature_hex(" effcdf6ae5eb2fa2d27416d5f184df9c259a7c7", digest));
    EXPECT_FALSE(segment::parse_signature_hex("", digest));
}

TEST(FirstArrayElement, FindsTheRawBytesOfTheFirstValue) {
    std::string_view element;
    ASSERT_TRUE(segment::first_array_element(R"([{"a":"x,]}"},{"b":2}])", element));
    EXPECT_EQ(element, R"({"a":"x,]}"})");
    ASSERT_TRUE(segment::first_array_element(" \n[ \t{\"a\":[1,2,{\"c\":\"\\\"\"}]} , 5]", element));
    EXPECT_EQ(element, R"({"a":[1,2,{"c":"\""}]})");
    ASSERT_TRUE(segment::first_array_element("[42,1]", element));
    EXPECT_EQ(element, "42");
    ASSERT_TRUE(segment::first_array_element("[\"only\"]", element));
    EXPECT_EQ(element, "\"only\"");
}

TEST(FirstArrayElement, DeepNestingDoesNotRecurse) {
    std::string_view element;
    const std::string deep = "[" + std::string(1000000, '[') + std::string(1000000, ']') + ",1]";
    ASSERT_TRUE(segment::first_array_element(deep, element));
    EXPECT_EQ(element.size(), 2000000u);
}

TEST(FirstArrayElement, RefusesNonArraysAndBrokenElements) {
    std::string_view element;
    EXPECT_FALSE(segment::first_array_element(R"({"batch":[{"a":1}]})", element));
    EXPECT_FALSE(segment::first_array_element("[]", element));
    EXPECT_FALSE(segment::first_array_element("[ ]", element));
    EXPECT_FALSE(segment::first_array_element("[", element));
    EXPECT_FALSE(segment::first_array_element(R"([{"a":)", element));
    EXPECT_FALSE(segment::first_array_element(R"([{"a":1)", element));
    EXPECT_FALSE(segment::first_array_element("", element));
    EXPECT_FALSE(segment::first_array_element("   ", element));
}

TEST(VerifySignature, WholeBodyOrFirstElement) {
    const std::string secret = "s3cret";
    const std::string first = R"({"type":"track","event":"A","userId":"1"})";
    const std::string batch = "[" + first + R"(,{"type":"track","event":"B","userId":"2"}])";
    EXPECT_TRUE(segment::verify_signature(first, hex_hmac(secret, first), secret));
    EXPECT_TRUE(segment::verify_signature(batch, hex_hmac(secret, batch), secret));
    EXPECT_TRUE(segment::verify_signature(batch, hex_hmac(secret, first), secret));
    EXPECT_FALSE(segment::verify_signature(batch, hex_hmac(secret, first + " "), secret));
    EXPECT_FALSE(segment::verify_signature(batch, hex_hmac("other", first), secret));
    EXPECT_FALSE(segment::verify_signature(first, hex_hmac(secret, batch), secret));
}

TEST(SignatureCoverage, SaysWhatTheSignatureVouchesFor) {
    using segment::SignatureCoverage;
    const std::string secret = "s";
    const std::string first = R"({"type":"track","event":"A","userId":"u"})";
    const std::string batch = "[" + first + R"(,{"type":"track","event":"B","userId":"u"}])";
    EXPECT_EQ(segment::signature_coverage(first, hex_hmac(secret, first), secret),
              SignatureCoverage::WholeBody);
    EXPECT_EQ(segment::signature_coverage(batch, hex_hmac(secret, batch), secret),
              SignatureCoverage::WholeBody);
    EXPECT_EQ(segment::signature_coverage(batch, hex_hmac(secret, first), secret),
              SignatureCoverage::FirstElement);
    EXPECT_EQ(segment::signature_coverage(batch, hex_hmac("other", batch), secret), SignatureCoverage::None);
    EXPECT_EQ(segment::signature_coverage(batch, "not hex", secret), SignatureCoverage::None);
    // A one-element array signed over its element: still only the element's bytes, which are the message.
    const std::string single = "[" + first + "]";
    EXPECT_EQ(segment::signature_coverage(single, hex_hmac(secret, first), secret),
              SignatureCoverage::FirstElement);
}

TEST(VerifySignature, MalformedSignaturesAreFalse) {
    EXPECT_FALSE(segment::verify_signature("body", "", "k"));
    EXPECT_FALSE(segment::verify_signature("body", "sha1=" + hex_hmac("k", "body"), "k"));
    EXPECT_FALSE(segment::verify_signature("body", hex_hmac("k", "body").substr(1), "k"));
    std::string upper = hex_hmac("k", "body");
    for (char &c : upper) {
        c = static_cast<char>(toupper(c));
    }
    EXPECT_TRUE(segment::verify_signature("body", upper, "k"));
}

}  // namespace
