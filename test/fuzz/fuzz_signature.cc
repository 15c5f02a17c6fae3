// libFuzzer target for the signature code: first_array_element must return a slice of its input that starts
// a JSON value, and verify_signature must agree with a direct HMAC of the whole body or of that slice;
// signature_coverage must say which of the two the signature covered.
#include "core/signature.h"

#include <cstdint>
#include <cstdlib>
#include <string>

// The body must verify against the signature of `signed_bytes` (the whole body, or its first element), with
// the coverage `expected`.
static void expect_verified(const std::string &body, std::string_view signed_bytes,
                            segment::SignatureCoverage expected) {
    segment::Sha1Digest digest;
    char hex[41];
    if (!segment::hmac_sha1("fuzz", signed_bytes, digest)) {
        std::abort();
    }
    segment::digest_to_hex(digest, hex);
    if (!segment::verify_signature(body, hex, "fuzz") ||
        segment::signature_coverage(body, hex, "fuzz") != expected) {
        std::abort();
    }
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string body(reinterpret_cast<const char *>(data), size);
    std::string_view element;
    if (segment::first_array_element(body, element)) {
        if (element.empty() || element.data() < body.data() ||
            element.data() + element.size() > body.data() + body.size()) {
            std::abort();
        }
        expect_verified(body, element, segment::SignatureCoverage::FirstElement);
    }
    expect_verified(body, body, segment::SignatureCoverage::WholeBody);
    // Garbage as a signature is never an error and almost never true.
    segment::verify_signature(body, body, "fuzz");
    return 0;
}
