// Segment X-Signature computation and verification. The HMAC context is fetched once per thread and reused,
// because fetching the algorithm from OpenSSL's provider registry costs more than hashing a typical event.
#include "core/no_postgres.h"
#include "core/signature.h"

#include <string>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

namespace segment {
namespace {

// One HMAC-SHA1 context per thread, created on first use and kept for the life of the process, together with
// the secret it was last keyed with: a receiver checks every request of a source against the same secret, and
// re-initialising with the same key skips HMAC's key schedule (two SHA-1 blocks plus OpenSSL's setup).
struct KeyedContext {
    EVP_MAC_CTX *context = nullptr;
    std::string secret;
    bool keyed = false;
};

KeyedContext &keyed_context() noexcept {
    thread_local KeyedContext state;
    if (state.context == nullptr) {
        EVP_MAC *mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
        if (mac == nullptr) {
            return state;
        }
        state.context = EVP_MAC_CTX_new(mac);
        EVP_MAC_free(mac);
        if (state.context == nullptr) {
            return state;
        }
        char digest_name[] = "SHA1";
        OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
                               OSSL_PARAM_construct_end()};
        if (EVP_MAC_CTX_set_params(state.context, params) != 1) {
            EVP_MAC_CTX_free(state.context);
            state.context = nullptr;
        }
    }
    return state;
}

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
    KeyedContext &state = keyed_context();
    if (state.context == nullptr) {
        return false;
    }
    int initialised;
    if (state.keyed && state.secret == secret) {
        initialised = EVP_MAC_init(state.context, nullptr, 0, nullptr);
    } else {
        // An empty key is legal for HMAC; OpenSSL wants a non-null pointer for it.
        static const unsigned char empty_key = 0;
        const unsigned char *key =
            secret.empty() ? &empty_key : reinterpret_cast<const unsigned char *>(secret.data());
        state.keyed = false;
        initialised = EVP_MAC_init(state.context, key, secret.size(), nullptr);
        if (initialised == 1) {
            try {
                state.secret.assign(secret.data(), secret.size());
                state.keyed = true;
            } catch (...) {
                // No memory for the cached copy: still correct, just not cached.
            }
        }
    }
    size_t written = 0;
    return initialised == 1 &&
           EVP_MAC_update(state.context, reinterpret_cast<const unsigned char *>(body.data()), body.size()) ==
               1 &&
           EVP_MAC_final(state.context, out.data(), &written, out.size()) == 1 && written == out.size();
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
    if (reader.Parse<rapidjson::kParseStopWhenDoneFlag>(stream, handler).IsError()) {
        return false;
    }
    element = body.substr(pos, stream.Tell());
    return true;
}

bool verify_signature(std::string_view body, std::string_view signature, std::string_view secret) noexcept {
    Sha1Digest expected;
    if (!parse_signature_hex(signature, expected)) {
        return false;
    }
    if (digest_matches(secret, body, expected)) {
        return true;
    }
    std::string_view element;
    return first_array_element(body, element) && digest_matches(secret, element, expected);
}

}  // namespace segment
