// The write path for a segment_events that has rules: INSERT … ON CONFLICT is refused on such a table, so
// each event is probed by its key and inserted with a plain INSERT, one statement each, in key order (the
// rules then run for every row, as they would for any INSERT). Slow, and only used when rules exist.
#pragma once

#include "pg/ingest.h"

#include "pg/postgres_headers.h"

namespace segment_pg {

// Whether segment_events in `schema` has rules (false when it does not exist: the caller's INSERT then raises
// the proper error).
bool events_table_has_rules(Oid schema);

// Writes events[order[0..count)] and sets each outcome (Stored or Duplicate); *stored counts the new rows.
// Needs SPI. A unique violation (another transaction stored the same message meanwhile) is raised, as the
// other paths do, and the caller retries message by message.
void insert_events_with_rules(Oid schema, PendingEvent *events, const int *order, int count, int64 *stored);

// Marks the prepared statements for preparing again (see ingest_forget_plans).
void forget_rule_insert_plans();

}  // namespace segment_pg
