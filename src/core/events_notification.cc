// See events_notification.h.
#include "core/events_notification.h"

#include "core/http_response.h"

namespace segment {
namespace {

// The first `limit` bytes of `name` or fewer, never ending inside a UTF-8 character.
std::string_view cut_name(std::string_view name, size_t limit) {
    if (name.size() <= limit) {
        return name;
    }
    size_t end = limit;
    // Back off over continuation bytes (10xxxxxx) to the start of the character that did not fit.
    for (int back = 0; back < 4 && end > 0 && (static_cast<unsigned char>(name[end]) & 0xC0) == 0x80;
         ++back) {
        --end;
    }
    return name.substr(0, end);
}

}  // namespace

std::string events_notification(const std::string_view *source_name, const SourceBatchCounts &counts) {
    std::string payload;
    payload.reserve(128);
    payload += "{\"source\":";
    if (source_name != nullptr) {
        append_json_string(cut_name(*source_name, kNotifiedNameLimit), &payload);
    } else {
        payload += "null";
    }
    payload += ",\"accepted\":" + std::to_string(counts.accepted);
    payload += ",\"duplicates\":" + std::to_string(counts.duplicates);
    payload += ",\"rejected\":" + std::to_string(counts.rejected);
    payload += ",\"last_id\":";
    payload += counts.last_id > 0 ? std::to_string(counts.last_id) : "null";
    payload += '}';
    return payload;
}

}  // namespace segment
