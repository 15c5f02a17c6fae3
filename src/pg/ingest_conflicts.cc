// Duplicates that are not retries: a message whose messageId is already stored for its source, but with other
// content, is dead-lettered (reason message_id_conflict, its own bytes kept) instead of being counted as a
// duplicate. Only the duplicates of a batch are looked at, so a batch without any costs nothing here. The
// comparison runs in SQL (segment_message_conflicts, security definer: the ingest role reads no payload).
// Plain C-style code over Postgres: no C++ object with a destructor lives in these frames.
#include "core/message.h"
#include "pg/ingest.h"
#include "pg/catalog.h"
#include "pg/ingest_internal.h"

#include "pg/postgres_headers.h"

extern "C" {
#include "nodes/value.h"
#include "parser/parse_func.h"
}

namespace segment_pg {
namespace {

// segment_message_conflicts(integer[], text[], jsonb[]) in the extension's schema; InvalidOid when it is not
// there (an extension installed at a version before 0.4 and not yet updated: duplicates then stay
// duplicates).
Oid find_conflicts_function(Oid schema) {
    const char *schema_name = get_namespace_name(schema);
    if (schema_name == nullptr) {
        return InvalidOid;
    }
    Oid argument_types[3] = {INT4ARRAYOID, TEXTARRAYOID, JSONBARRAYOID};
    List *name =
        list_make2(makeString(pstrdup(schema_name)), makeString(pstrdup("segment_message_conflicts")));
    return LookupFuncName(name, 3, argument_types, true);
}

}  // namespace

void reject_conflicting_duplicates(IngestBatch *batch) {
    int duplicates = 0;
    for (int i = 0; i < batch->event_count; ++i) {
        if (batch->events[i].outcome == EventOutcome::Duplicate) {
            ++duplicates;
        }
    }
    if (duplicates == 0) {
        return;
    }
    const Oid function = find_conflicts_function(batch->schema);
    if (!OidIsValid(function)) {
        return;
    }
    int *positions = static_cast<int *>(palloc(sizeof(int) * duplicates));
    Datum *sources = static_cast<Datum *>(palloc(sizeof(Datum) * duplicates));
    Datum *message_ids = static_cast<Datum *>(palloc(sizeof(Datum) * duplicates));
    Datum *payloads = static_cast<Datum *>(palloc(sizeof(Datum) * duplicates));
    int n = 0;
    for (int i = 0; i < batch->event_count; ++i) {
        const PendingEvent &event = batch->events[i];
        if (event.outcome == EventOutcome::Duplicate) {
            positions[n] = i;
            sources[n] = Int32GetDatum(event.source_id);
            message_ids[n] = event.text_columns[0];
            payloads[n] = JsonbPGetDatum(event.payload);
            ++n;
        }
    }
    Datum arguments[3] = {make_array(sources, nullptr, n, INT4OID),
                          make_array(message_ids, nullptr, n, TEXTOID),
                          make_array(payloads, nullptr, n, JSONBOID)};
    Oid argument_types[3] = {INT4ARRAYOID, TEXTARRAYOID, JSONBARRAYOID};
    char *query =
        psprintf("SELECT %s.segment_message_conflicts($1, $2, $3)", quoted_schema_name(batch->schema));
    // Not read-only: the query must see the rows this transaction has just written (a message sent twice in
    // one batch, or a write path that does not advance the command counter itself).
    const int rc = SPI_execute_with_args(query, 3, argument_types, arguments, nullptr, false, 0);
    if (rc != SPI_OK_SELECT) {
        elog(ERROR, "could not compare duplicates with the stored messages: %s", SPI_result_code_string(rc));
    }
    for (uint64 row = 0; row < SPI_processed; ++row) {
        bool is_null;
        const Datum value = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, 1, &is_null);
        const int position = is_null ? 0 : DatumGetInt32(value);
        if (position < 1 || position > n) {
            continue;
        }
        PendingEvent &event = batch->events[positions[position - 1]];
        if (event.outcome != EventOutcome::Duplicate) {
            continue;  // listed twice
        }
        event.outcome = EventOutcome::Rejected;
        --batch->duplicates;
        char *message_id = TextDatumGetCString(event.text_columns[0]);
        PendingRejection rejection{event.source_id,
                                   event.request,
                                   event.received_at,
                                   "message_id_conflict",
                                   psprintf("messageId \"%s\" is already stored for this source with other "
                                            "content; a retry must resend the same message",
                                            message_id),
                                   message_id,
                                   event.payload,
                                   nullptr};
        add_rejection(batch, rejection);
    }
    SPI_freetuptable(SPI_tuptable);
}

}  // namespace segment_pg
