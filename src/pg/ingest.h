// The ingest path shared by segment_ingest() and the HTTP worker: Segment messages (jsonb) → validation by
// the core rules → a pending batch → one INSERT of all events (ON CONFLICT DO NOTHING for dedup) and one of
// the dead letters, in the caller's transaction. Never commits, never answers anyone: the caller does both.
//
// Plain structs and functions over palloc'd memory: these frames call Postgres and may longjmp, so no C++
// object with a destructor lives here.
#pragma once

#include "core/message.h"
#include "core/signature.h"

#include "pg/postgres_headers.h"

namespace segment_pg {

enum class EventOutcome : uint8 { Pending, Stored, Duplicate, Rejected };

// One valid message waiting for the INSERT.
struct PendingEvent {
    int32 source_id;
    int32 request;  // caller's tag (the worker's request number), reported back with the outcome
    EventOutcome outcome;
    int64 id;               // its segment_events.id once Stored; 0 when the write path cannot tell (rules)
    Datum text_columns[9];  // message_id, type, event, name, category, user_id, anonymous_id, group_id,
                            // previous_id
    bool text_nulls[9];
    TimestampTz timestamp, received_at;
    TimestampTz original_timestamp, sent_at;
    bool original_timestamp_null, sent_at_null;
    Jsonb *payload;
    bool signature_verified;  // its own bytes were covered by a verified X-Signature (segment_events column)
};

// One message or body for segment_rejected.
struct PendingRejection {
    int32 source_id;
    int32 request;
    TimestampTz received_at;
    const char *reason;  // a stable code
    char *detail;
    char *message_id;  // may be null
    Jsonb *payload;    // may be null (the body was not JSON)
    bytea *raw;        // may be null when payload is set: the raw bytes are then the payload's text
};

// A deletion notification ({"type":"delete","userId":…}) of a source that honours them, for
// segment_deletions.
struct PendingDeletion {
    int32 source_id;
    int32 request;
    char *user_id;
};

struct IngestPolicy;  // pg/ingest_policy.h

struct IngestBatch {
    Oid schema;             // where the extension's tables live
    MemoryContext context;  // everything pending; reset by ingest_batch_reset()
    PendingEvent *events;
    int event_count, event_capacity;
    PendingRejection *rejections;
    int rejection_count, rejection_capacity;
    PendingDeletion *deletions;
    int deletion_count, deletion_capacity;
    // Who is suppressed and which sources honour deletion notifications (see pg/ingest_policy.h); set by the
    // caller before queueing. Null: nobody is suppressed and deletion notifications are dead-lettered.
    const IngestPolicy *policy;
    int64 stored, duplicates, rejected;  // totals over every flush since ingest_batch_init
    int64 last_id;  // the highest segment_events.id stored by those flushes (0: none, or not known)
    // When > 0, a long array is written every this many messages while it is queued (for segment_ingest's
    // bounded memory); per-message outcomes are then not kept. 0: everything waits for ingest_batch_flush.
    int flush_every;
};

void ingest_batch_init(IngestBatch *batch, Oid schema, MemoryContext parent);

// Splits a body into messages and queues each: one message (an object), an array of messages, or an envelope
// {"batch":[…], "context", "integrations", "sentAt"} whose top-level fields apply to items lacking them.
// Invalid messages are queued as rejections with their reason. `implied_type` is the endpoint's type, if any.
// `client_ip`, if given, becomes context.ip of messages that have none (the tracking API, as Segment does).
// `signature` is what a verified X-Signature covered of this body: every message (WholeBody), the first
// element of an array body (FirstElement), or nothing (None: unsigned, or from SQL); it sets each event's
// signature_verified.
void ingest_queue_body(IngestBatch *batch, int32 source_id, int32 request, TimestampTz received_at,
                       Jsonb *body, const segment::MessageType *implied_type, const char *client_ip = nullptr,
                       segment::SignatureCoverage signature = segment::SignatureCoverage::None);

// For a body that json_to_jsonb() refused: dead-letters each message holding a value Postgres cannot store,
// on its own and with its own bytes, and queues the others as ingest_queue_body() would. Returns false (with
// a palloc'd *error) when the body is not JSON at all; the caller then rejects the whole body. `signature` as
// for ingest_queue_body() (a FirstElement signature vouches for nothing once the first element is dropped).
bool ingest_queue_unparsed_body(IngestBatch *batch, int32 source_id, int32 request, TimestampTz received_at,
                                const char *body, size_t length, const segment::MessageType *implied_type,
                                const char *client_ip, segment::SignatureCoverage signature, char **error);

// Queues one rejection of a whole body (e.g. invalid JSON). Copies `raw` and `detail`.
void ingest_queue_rejection(IngestBatch *batch, int32 source_id, int32 request, TimestampTz received_at,
                            const char *reason, const char *detail, const char *raw, size_t raw_length);

// Writes everything pending in the current transaction (needs an SPI connection) and sets each event's
// outcome. A message Postgres refuses on its own (a value it cannot store, a trigger rejecting the row)
// becomes a rejection; a failure of the database itself (read-only, disk full, lock timeout, shutdown) is
// re-raised.
void ingest_batch_flush(IngestBatch *batch);

// Forgets everything pending (after the caller has read the outcomes).
void ingest_batch_reset(IngestBatch *batch);

// Orders two events by (source_id, message_id bytes): the one order in which every worker writes, so that
// concurrent batches with overlapping messages never wait for each other in a cycle.
int compare_events_by_key(const PendingEvent *a, const PendingEvent *b);

// Whether an error is about one message (store the rest) or about the database (retry everything later).
bool error_is_about_the_message(int sqlerrcode);

// Looks up a source by name in the extension's schema (needs SPI). Errors when unknown or disabled.
int32 lookup_source_by_name(Oid schema, const char *name);

// Forgets the prepared INSERTs, so that the next flush prepares them again against the catalog as it is now
// (after a failed batch: the schema may have been renamed or the tables re-created).
void ingest_forget_plans();

}  // namespace segment_pg
