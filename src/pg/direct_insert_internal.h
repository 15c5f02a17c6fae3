// What the two direct write paths share: the unpartitioned segment_events of 0.4 and earlier, deduplicated by
// its own unique index (direct_insert.cc), and the partitioned one of 0.5, deduplicated through
// segment_event_keys (direct_insert_partitioned.cc).
#pragma once

#include "pg/ingest.h"

#include "pg/postgres_headers.h"

namespace segment_pg {

// The columns as the extension creates them, in order: the first 16 before version 0.4, all 17 since (0.4
// added signature_verified).
constexpr int kColumns = 17;
constexpr int kColumnsBefore04 = 16;

// A column as the extension creates it.
struct ExpectedColumn {
    const char *name;
    Oid type;
};

// Whether the columns of `descriptor` (all of them: the caller checks how many there are) are `expected`, in
// order: same names, types (no typmod), the default collation for text, none dropped or generated. Filling a
// slot ourselves is what an INSERT would do only then.
bool columns_as_created(TupleDesc descriptor, const ExpectedColumn *expected);

// Whether nothing of the user's applies to rows written into `rel`: no trigger, rule or row security, and it
// is not a partition (written to directly, it would bypass its parent).
bool nothing_applies_to_rows(Relation rel);

// The range table entry of a relation a direct path inserts into.
RangeTblEntry *insert_entry(Oid relid, char relkind);

// Whether segment_events is exactly as the extension created it: a table or a partitioned table (not a
// partition), with no trigger, rule or row security, and exactly its columns (same names, types, no typmod,
// collations, nothing generated). Filling a slot ourselves is what an INSERT would do only then; anything
// else takes the INSERT path, which applies all of it.
bool events_table_is_plain(Relation rel);

// The valid, immediate, non-partial unique index of `rel` on exactly (source_column, message_column) under
// the default collation, or InvalidOid. (Message ids repeated inside a batch are found bytewise, which is the
// index's equality only under the default collation.)
Oid unique_key_index(Relation rel, AttrNumber source_column, AttrNumber message_column);

// Fills a slot of segment_events' descriptor with an event (id 0: drawn once the row is known to be new).
void fill_event_slot(TupleTableSlot *slot, const PendingEvent &event);

// For events[0, count) in `order` (sorted by key, then position): true for every event whose key an earlier
// event of the batch has. palloc'd.
bool *repeated_keys(const PendingEvent *events, const int *order, int count);

// The direct path into a partitioned segment_events (relid, in `schema`): see direct_insert.h. Returns false,
// having written nothing, when it does not apply (segment_event_keys missing or not plain, a partition with
// triggers or another column layout, no INSERT privilege on the keys).
bool insert_partitioned_directly(Oid schema, Oid relid, PendingEvent *events, const int *order, int count,
                                 int64 *stored);

}  // namespace segment_pg
