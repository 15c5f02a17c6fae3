// libFuzzer target for the warehouse naming and discovery of src/core: from arbitrary event names and leaf
// records (keys are arbitrary bytes from the internet), every relation and column name is made only of
// lower-case ASCII letters, digits and '_', is at most 63 bytes and never empty; snake_case never writes past
// its capacity and writes only those bytes (it is not idempotent: like the converter it follows, "2_2." gives
// "2__2"); types only ever widen; and the JSON report parses.
#include "core/snake_case.h"
#include "core/warehouse_discovery.h"

#include <rapidjson/document.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

void require(bool condition) {
    if (!condition) {
        std::abort();
    }
}

bool is_name(const std::string &name) {
    if (name.empty() || name.size() > segment::kMaxNameBytes) {
        return false;
    }
    for (char c : name) {
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
            return false;
        }
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const std::string_view input(reinterpret_cast<const char *>(data), size);

    // snake_case on the raw input: bounded, only name bytes.
    std::string buffer(segment::snake_case_capacity(input.size()) + 4, '#');
    const size_t written = segment::snake_case(input, buffer.data());
    require(written <= segment::snake_case_capacity(input.size()));
    require(buffer.compare(segment::snake_case_capacity(input.size()), 4, "####") == 0);
    const std::string once = segment::snake_case(input);
    require(once.empty() || is_name(once.substr(0, segment::kMaxNameBytes)));

    // The first bytes up to a NUL name the event; the rest are leaf records (kept well-formed half the time).
    const size_t split = input.find('\0');
    const std::string_view event = input.substr(0, split == std::string_view::npos ? input.size() : split);
    std::string leaves;
    if (split != std::string_view::npos) {
        const std::string_view rest = input.substr(split + 1);
        if (!rest.empty() && (rest[0] & 1)) {
            // Well-formed: each byte pair chooses a section and type, then a key from the following bytes.
            size_t at = 1;
            while (at + 2 < rest.size()) {
                const auto section = static_cast<segment::Section>(static_cast<uint8_t>(rest[at]) % 3);
                const auto type = static_cast<segment::ColumnType>(static_cast<uint8_t>(rest[at + 1]) % 5);
                const size_t key_length =
                    std::min<size_t>(static_cast<uint8_t>(rest[at + 2]) % 24, rest.size() - at - 3);
                segment::append_leaf_header(leaves, section, type, 1);
                const uint32_t length = static_cast<uint32_t>(key_length);
                for (int shift = 0; shift < 32; shift += 8) {
                    leaves.push_back(static_cast<char>((length >> shift) & 0xff));
                }
                leaves.append(rest.substr(at + 3, key_length));
                at += 3 + key_length;
            }
        } else {
            leaves.assign(rest);
        }
    }

    segment::WarehouseDiscovery discovery;
    for (int kind = 0; kind <= static_cast<int>(segment::MessageKind::Alias); ++kind) {
        discovery.add(1, static_cast<segment::MessageKind>(kind), event, leaves);
    }
    for (const auto &relation : discovery.relations()) {
        require(is_name(relation.name));
        for (const auto &column : relation.columns) {
            require(is_name(column.name));
            require(!column.paths.empty());
        }
    }
    const std::string json = discovery.to_json();
    rapidjson::Document document;
    document.Parse(json.data(), json.size());
    require(!document.HasParseError() && document.IsArray());

    // Widening is monotonic: once text, always text; a result is one of its two inputs or text/double.
    for (int a = 0; a <= 4; ++a) {
        for (int b = 0; b <= 4; ++b) {
            const auto wide =
                segment::widen(static_cast<segment::ColumnType>(a), static_cast<segment::ColumnType>(b));
            require(wide ==
                    segment::widen(static_cast<segment::ColumnType>(b), static_cast<segment::ColumnType>(a)));
            require(segment::widen(wide, static_cast<segment::ColumnType>(a)) == wide);
        }
    }
    return 0;
}
