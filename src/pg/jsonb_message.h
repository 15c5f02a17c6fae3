// Reading a Segment message out of a jsonb object without converting it to text: one pass over the object's
// sorted keys finds every member we need, and the field views point into the jsonb itself.
// Plain C-style functions over Postgres data: no C++ object with a destructor lives in these frames.
#pragma once

#include "core/message.h"

#include "pg/postgres_headers.h"

namespace segment_pg {

// True when the jsonb's root is an object (not an array, not a scalar).
bool jsonb_is_object(Jsonb *jsonb);

// Everything segment_parse() and the ingest path read from a message's top level.
struct MessageMembers {
    segment::MessageFields fields;
    // context, properties, traits, integrations: the values as found (valid while the jsonb lives)
    JsonbValue objects[4];
    bool has_object[4];
};
enum MessageObject { kContext = 0, kProperties = 1, kTraits = 2, kIntegrations = 3 };

// Fills `members` from the top-level keys of an object container. Strings are views into the container;
// numbers are rendered with numeric_out into the current memory context.
void read_message_members(JsonbContainer *object, MessageMembers &members);

// The messageId to use for a message that has none: derived from its content without sentAt and receivedAt,
// so that an identical retry gets the same id. Returns a palloc'd C string.
char *derived_message_id(JsonbContainer *object);

constexpr int64 kUnixEpochInPostgresMicros =
    int64(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * USECS_PER_SEC;

inline TimestampTz timestamptz_from_unix(segment::UnixMicros micros) {
    return micros - kUnixEpochInPostgresMicros;
}
inline segment::UnixMicros unix_from_timestamptz(TimestampTz timestamp) {
    return timestamp + kUnixEpochInPostgresMicros;
}

}  // namespace segment_pg
