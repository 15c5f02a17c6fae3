// The admin listener's one database read: the data of the debugger page (sources, recent events, recent dead
// letters). See admin_db.cc.
#pragma once

#include "pg/postgres_headers.h"

namespace segment_pg {

// JSON texts (palloc'd in the caller's memory context).
struct AdminRecent {
    const char *sources;  // [{"id","name","enabled"}], by name
    const char
        *events;  // [{"id","source_id","received_at","type","event","message_id","payload"}], newest first
    const char
        *rejected;  // [{"id","source_id","received_at","reason","detail","message_id","payload","raw"}]
};

// Reads, in a read-only transaction of its own as the extension's owner, with a statement timeout: events
// with an id above after_event and dead letters with an id above after_rejected, at most `limit` of each, of
// the source named `source` (all when null). Raises an error on failure (the transaction is then aborted by
// admin_abort_transaction()).
AdminRecent admin_read_recent(int64 after_event, int64 after_rejected, const char *source, int limit);
void admin_abort_transaction();

}  // namespace segment_pg
