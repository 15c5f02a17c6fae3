// What the ingest path must know of user deletion (see segment_forget_user in sql/segment_webhook--0.4.sql):
// the ids whose new messages are dead-lettered as `suppressed`, and the sources whose deletion notifications
// ({"type":"delete","userId":…}) are recorded in segment_deletions for the warehouse worker to carry out
// rather than dead-lettered. Read from the tables into palloc'd memory, so that checking a message costs a
// pointer test while nobody is suppressed and a binary search otherwise; never a query per message.
//
// Plain structs and functions over palloc'd memory: these frames call Postgres and may longjmp, so no C++
// object with a destructor lives here.
#pragma once

#include "pg/ingest.h"

#include "pg/postgres_headers.h"

namespace segment_pg {

struct SuppressedId {
    int32 source_id;
    int32 length;
    const char *bytes;  // not NUL-terminated
};

struct IngestPolicy {
    int32 *honoring_sources;  // sources with honor_deletions
    int honoring_count;
    bool honoring_unknown;     // segment_sources could not be read: keep what was known (none: empty)
    SuppressedId *suppressed;  // sorted by (source_id, bytes, length)
    int suppressed_count;
};

// Reads the policy of the extension in `schema` into `context` (needs SPI in a transaction; runs as the
// ingest role, which may read segment_sources and segment_suppressions). An installation older than 0.4 has
// no such tables: an empty policy.
IngestPolicy *load_ingest_policy(Oid schema, MemoryContext context);

bool policy_honors_deletions(const IngestPolicy *policy, int32 source_id);

bool policy_suppresses_id(const IngestPolicy *policy, int32 source_id, std::string_view id);

// Whether a valid message belongs to a suppressed user: its userId, anonymousId or (alias) previousId.
inline bool policy_suppresses(const IngestPolicy *policy, int32 source_id,
                              const segment::ParsedMessage &message) {
    if (policy == nullptr || policy->suppressed_count == 0) {
        return false;  // the usual case: nobody is suppressed
    }
    return (message.user_id && policy_suppresses_id(policy, source_id, *message.user_id)) ||
           (message.anonymous_id && policy_suppresses_id(policy, source_id, *message.anonymous_id)) ||
           (message.previous_id && policy_suppresses_id(policy, source_id, *message.previous_id));
}

// Writes the deletion notifications queued in the batch to segment_deletions (status 'pending'), in the
// caller's transaction (needs SPI). A failure is the database's: it fails the batch, which is retried.
void insert_deletion_requests(IngestBatch *batch);

}  // namespace segment_pg
