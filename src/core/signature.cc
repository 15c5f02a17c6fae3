// Segment X-Signature computation and verification: HMAC-SHA1 with a per-thread cached key schedule, hex
// decoding without data-dependent branches, constant-time comparison, and the first-array-element rule.
#include "core/no_postgres.h"
#include "core/signature.h"

#include <cstring>
#include <string>

// SHA1_Init/Update/Final: see hmac_sha1 for why the deprecated primitive is used.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

namespace segment {
namespace {

// HMAC-SHA1 over libcrypto's SHA-1 primitive. HMAC's key schedule (hashing the key XOR ipad and XOR opad) is
// done once per secret and kept per thread: a receiver checks every request of a source against the same
// secret, so a check costs only the two SHA-1 passes over the body and the inner digest. The SHA1_* calls are
// deprecated in OpenSSL 3 in favour of EVP, whose per-call dispatch costs more than hashing a small event;
// they use the same (hardware-accelerated) implementation underneath.
struct HmacKey {
    SHA_CTX inner;  // state after absorbing key XOR ipad
    SHA_CTX outer;  // state after absorbing key XOR opad
};

void schedule_key(std::string_view secret, HmacKey &key) {
    unsigned char block[SHA_CBLOCK] = {0};
    if (secret.size() > sizeof block) {
        SHA1(reinterpret_cast<const unsigned char *>(secret.data()), secret.size(), block);
    } else if (!secret.empty()) {
        std::memcpy(block, secret.data(), secret.size());
    }
    unsigned char pad[SHA_CBLOCK];
    for (size_t i = 0; i < sizeof block; ++i) {
        pad[i] = block[i] ^ 0x36;
    }
    SHA1_Init(&key.inner);
    SHA1_Update(&key.inner, pad, sizeof pad);
    for (size_t i = 0; i < sizeof block; ++i) {
        pad[i] = block[i] ^ 0x5c;
    }
    SHA1_Init(&key.outer);
    SHA1_Update(&key.outer, pad, sizeof pad);
    OPENSSL_cleanse(block, sizeof block);
    OPENSSL_cleanse(pad, sizeof pad);
}

struct CachedKey {
    std::string secret;
    HmacKey key;
    bool valid = false;
};

// Hex digit values; -1 for anything else. A table keeps the decoding free of data-dependent branches.
struct HexTable {
    signed char value[256];
    constexpr HexTable() : value() {
        for (int i = 0; i < 256; ++i) {
            value[i] = -1;
        }
        for (int i = 0; i < 10; ++i) {
            value['0' + i] = static_cast<signed char>(i);
        }
        for (int i = 0; i < 6; ++i) {
            value['a' + i] = static_cast<signed char>(10 + i);
            value['A' + i] = static_cast<signed char>(10 + i);
        }
    }
};
constexpr HexTable kHex;

bool is_json_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

bool digest_matches(std::string_view secret, std::string_view message, const Sha1Digest &expected) noexcept {
    Sha1Digest actual;
    if (!hmac_sha1(secret, message, actual)) {
        return false;
    }
    return CRYPTO_memcmp(actual.data(), expected.data(), actual.size()) == 0;
}

}  // namespace

bool hmac_sha1(std::string_view secret, std::string_view body, Sha1Digest &out) noexcept {
    thread_local CachedKey cache;
    HmacKey fresh;
    const HmacKey *key = &cache.key;
    if (!cache.valid || cache.secret != secret) {
        schedule_key(secret, fresh);
        key = &fresh;
        try {
            cache.secret.assign(secret.data(), secret.size());
            cache.key = fresh;
            cache.valid = true;
        } catch (...) {
            cache.valid = false;  // no memory for the cached copy: still correct, just not cached
        }
    }
    SHA_CTX context = key->inner;
    unsigned char inner_digest[SHA_DIGEST_LENGTH];
    if (SHA1_Update(&context, body.data(), body.size()) != 1 || SHA1_Final(inner_digest, &context) != 1) {
        return false;
    }
    context = key->outer;
    return SHA1_Update(&context, inner_digest, sizeof inner_digest) == 1 &&
           SHA1_Final(out.data(), &context) == 1;
}

void digest_to_hex(const Sha1Digest &digest, char out[41]) noexcept {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < digest.size(); ++i) {
        out[2 * i] = digits[digest[i] >> 4];
        out[2 * i + 1] = digits[digest[i] & 0xf];
    }
    out[40] = '\0';
}

bool parse_signature_hex(std::string_view signature, Sha1Digest &out) noexcept {
    if (signature.size() != 2 * out.size()) {
        return false;
    }
    int invalid = 0;
    for (size_t i = 0; i < out.size(); ++i) {
        const int high = kHex.value[static_cast<unsigned char>(signature[2 * i])];
        const int low = kHex.value[static_cast<unsigned char>(signature[2 * i + 1])];
        invalid |= high | low;  // a -1 anywhere sets the sign bit
        out[i] = static_cast<unsigned char>((high & 0xf) << 4 | (low & 0xf));
    }
    return invalid >= 0;
}

bool first_array_element(std::string_view body, std::string_view &element) noexcept {
    size_t pos = 0;
    while (pos < body.size() && is_json_space(body[pos])) {
        ++pos;
    }
    if (pos == body.size() || body[pos] != '[') {
        return false;
    }
    ++pos;
    while (pos < body.size() && is_json_space(body[pos])) {
        ++pos;
    }
    if (pos == body.size() || body[pos] == ']') {
        return false;
    }
    // Let RapidJSON find where the first value ends: it validates the element and handles strings and
    // escapes; kParseStopWhenDoneFlag stops right after the value instead of demanding end of input.
    rapidjson::MemoryStream stream(body.data() + pos, body.size() - pos);
    rapidjson::BaseReaderHandler<> handler;
    rapidjson::Reader reader;
    // Iterative parsing: a body of a million "[" must not recurse a million frames deep.
    if (reader.Parse<rapidjson::kParseStopWhenDoneFlag | rapidjson::kParseIterativeFlag>(stream, handler)
            .IsError()) {
        return false;
    }
    element = body.substr(pos, stream.Tell());
    return true;
}

SignatureCoverage signature_coverage(std::string_view body, std::string_view signature,
                                     std::string_view secret) noexcept {
    Sha1Digest expected;
    if (!parse_signature_hex(signature, expected)) {
        return SignatureCoverage::None;
    }
    if (digest_matches(secret, body, expected)) {
        return SignatureCoverage::WholeBody;
    }
    std::string_view element;
    if (first_array_element(body, element) && digest_matches(secret, element, expected)) {
        return SignatureCoverage::FirstElement;
    }
    return SignatureCoverage::None;
}

bool verify_signature(std::string_view body, std::string_view signature, std::string_view secret) noexcept {
    return signature_coverage(body, signature, secret) != SignatureCoverage::None;
}

}  // namespace segment
