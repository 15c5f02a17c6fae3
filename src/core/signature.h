// Segment's request signatures: HMAC-SHA1 of the raw request body under the source's shared secret, sent as
// 40 lowercase hex characters in X-Signature. Pure C++ over OpenSSL's libcrypto; never includes Postgres.
// Comparisons of a received signature with the expected one must stay constant time.
#pragma once
#include "core/no_postgres.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace segment {

using Sha1Digest = std::array<unsigned char, 20>;

// HMAC-SHA1(key = secret, message = body). Returns false only if libcrypto fails (out of memory).
bool hmac_sha1(std::string_view secret, std::string_view body, Sha1Digest &out) noexcept;

// Lowercase hex of the digest, written into a caller-provided buffer of 41 bytes (NUL-terminated).
void digest_to_hex(const Sha1Digest &digest, char out[41]) noexcept;

// Decodes 40 hex characters (either letter case). False for any other length or a non-hex character.
bool parse_signature_hex(std::string_view signature, Sha1Digest &out) noexcept;

// The bytes of the first top-level element of a JSON array, exactly as they stand in `body` (no surrounding
// whitespace). False when `body` is not a JSON array or its first element is not well-formed JSON.
bool first_array_element(std::string_view body, std::string_view &element) noexcept;

// What a verified signature vouches for. Segment's Actions webhook signs a batch (a JSON array) over the raw
// bytes of its first element only: the other elements then carry no proof of origin.
enum class SignatureCoverage : uint8_t {
    None,          // the signature does not verify
    WholeBody,     // the HMAC of the whole body: every message in it
    FirstElement,  // the HMAC of the first element of a JSON array body: that message only
};

// What `signature` (hex HMAC-SHA1 under `secret`) covers of `body`: the whole body, else (when `body` is a
// JSON array) the raw bytes of its first element, else nothing. Constant-time comparisons.
SignatureCoverage signature_coverage(std::string_view body, std::string_view signature,
                                     std::string_view secret) noexcept;

// True when signature_coverage() is not None.
bool verify_signature(std::string_view body, std::string_view signature, std::string_view secret) noexcept;

}  // namespace segment
