// libFuzzer target for segment::parse_iso8601: never crashes, never reads past the input, and whatever it
// accepts is inside years 0001-9999 and round-trips through days_from_civil's range.
#include "core/timestamp.h"

#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    // An exact-size heap copy so AddressSanitizer sees any read past the end.
    std::string text(reinterpret_cast<const char *>(data), size);
    const std::optional<segment::UnixMicros> micros = segment::parse_iso8601(text);
    if (micros) {
        const int64_t lowest = segment::days_from_civil(1, 1, 1) * 86400LL * 1000000 - 24LL * 3600 * 1000000;
        const int64_t highest =
            segment::days_from_civil(10000, 1, 1) * 86400LL * 1000000 + 24LL * 3600 * 1000000;
        if (*micros < lowest || *micros > highest) {
            std::abort();
        }
    }
    return 0;
}
