// The fast way to write a batch of events: what COPY does (multi-insert into the heap with a bulk-insert
// state, then the index entries), with ON CONFLICT's dedup done up front by probing the (source_id,
// message_id) index. Used only when segment_events is as the extension created it (no triggers, no row
// security, no extra columns); otherwise the caller falls back to INSERT … ON CONFLICT through SPI, which has
// the same outcome.
#pragma once

#include "pg/ingest.h"

#include "pg/postgres_headers.h"

namespace segment_pg {

// Inserts events[0, count) of the extension's segment_events in `schema`, in the order `order` gives (indexes
// into events, sorted by compare_events_by_key), and sets each event's outcome (Stored or Duplicate). Returns
// false, having done nothing, when the fast path does not apply. Raises Postgres errors like the INSERT would
// (for instance a unique violation when another transaction inserted the same message since the probe: the
// caller's subtransaction then retries through SPI).
bool insert_events_directly(Oid schema, PendingEvent *events, const int *order, int count, int64 *stored);

}  // namespace segment_pg
