// Write keys for new sources: random, URL-safe, long enough that guessing one is hopeless.
// Pure C++ over libcrypto's CSPRNG; never includes Postgres.
#pragma once
#include "core/no_postgres.h"

#include <cstddef>

namespace segment {

// 24 random bytes (192 bits) as 32 characters of unpadded base64url, NUL-terminated in `out`.
constexpr size_t kWriteKeyLength = 32;
bool generate_write_key(char out[kWriteKeyLength + 1]) noexcept;

}  // namespace segment
