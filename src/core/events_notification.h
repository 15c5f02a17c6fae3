// The payload of the NOTIFY that follows each committed batch on channel segment_events: one JSON object per
// source of the batch, {"source":…,"accepted":…,"duplicates":…,"rejected":…,"last_id":…}. Pure C++17; never
// includes Postgres. Postgres refuses a payload of 8000 bytes or more, so the source name is cut short.
#pragma once
#include "core/no_postgres.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace segment {

inline constexpr char kEventsChannel[] = "segment_events";

// Names longer than this (in bytes) are cut at the last whole UTF-8 character within it. Escaped, even a name
// of control characters stays under 6 × 1024 bytes, far from Postgres' 8000.
inline constexpr size_t kNotifiedNameLimit = 1024;
inline constexpr size_t kNotificationLimit = 8000;  // Postgres' NOTIFY_PAYLOAD_MAX_LENGTH (payload + NUL)

struct SourceBatchCounts {
    int64_t accepted = 0;    // new events stored
    int64_t duplicates = 0;  // messages already stored
    int64_t rejected = 0;    // dead letters written
    int64_t last_id = 0;     // highest segment_events.id stored; 0: none (or not known), written as null
};

// The JSON payload for one source. `source_name` null: the source is gone (written as null).
std::string events_notification(const std::string_view *source_name, const SourceBatchCounts &counts);

}  // namespace segment
