// Write key generation from OpenSSL's CSPRNG (RAND_bytes), encoded as unpadded base64url.
#include "core/no_postgres.h"
#include "core/write_key.h"

#include <openssl/rand.h>

namespace segment {

bool generate_write_key(char out[kWriteKeyLength + 1]) noexcept {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char random[24];
    if (RAND_bytes(random, sizeof random) != 1) {
        return false;
    }
    // 3 bytes become 4 characters; 24 bytes divide evenly, so no padding is ever needed.
    size_t o = 0;
    for (size_t i = 0; i < sizeof random; i += 3) {
        const unsigned group = random[i] << 16 | random[i + 1] << 8 | random[i + 2];
        out[o++] = alphabet[group >> 18 & 63];
        out[o++] = alphabet[group >> 12 & 63];
        out[o++] = alphabet[group >> 6 & 63];
        out[o++] = alphabet[group & 63];
    }
    out[o] = '\0';
    return true;
}

}  // namespace segment
