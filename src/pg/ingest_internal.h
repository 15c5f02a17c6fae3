// Between the two halves of the ingest path (ingest.cc queues, ingest_write.cc writes); not for other
// callers.
#pragma once

#include "pg/ingest.h"

#include "pg/postgres_headers.h"

namespace segment_pg {

// A one-dimensional array of `count` elements (nulls may be null: no element is NULL), in the current memory
// context.
Datum make_array(Datum *elements, bool *nulls, int count, Oid element_type);

// Appends a rejection to the batch (in the batch's memory context; the caller has switched to it).
void add_rejection(IngestBatch *batch, const PendingRejection &rejection);

// Turns the batch's duplicates whose stored message has other content into rejections (message_id_conflict).
// Needs SPI; call once the events are written, before the rejections are (ingest_conflicts.cc).
void reject_conflicting_duplicates(IngestBatch *batch);

}  // namespace segment_pg
