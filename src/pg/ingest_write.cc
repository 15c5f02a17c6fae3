// The write half of the ingest path: the prepared INSERTs (or the direct and rule paths), in (source_id,
// message_id) order, each batch in a subtransaction so that a message Postgres refuses is retried alone and
// dead-lettered. See ingest.h for the contract. Plain C-style code over Postgres: no C++ object with a
// destructor lives in these frames.
#include "core/message.h"
#include "pg/ingest.h"
#include "pg/catalog.h"
#include "pg/direct_insert.h"
#include "pg/ingest_internal.h"
#include "pg/ingest_policy.h"
#include "pg/rule_insert.h"
#include "pg/settings.h"

#include "pg/postgres_headers.h"

extern "C" {
#include "utils/acl.h"
}

namespace segment_pg {
namespace {

// The columns of segment_events the INSERT fills; the last, signature_verified, only when the table has it
// (see events_have_signature_column).
constexpr int kEventColumns = 16;
constexpr int kRejectionColumns = 7;

// Prepared once per backend (per extension schema) and kept: the worker flushes thousands of times a second.
struct Plans {
    Oid schema = InvalidOid;
    bool stale = false;             // set by ingest_forget_plans(): prepare again before the next use
    bool signature_column = false;  // insert_events fills signature_verified ($16)
    bool returning_ids = false;     // the events' INSERT returns their ids (see can_read_event_ids)
    bool partitioned = false;       // segment_events is partitioned: keys go to segment_event_keys first
    SPIPlanPtr insert_events = nullptr;
    SPIPlanPtr insert_rejections = nullptr;
};
Plans plans;

// Whether the current user may read segment_events.id, which RETURNING id needs. segment_webhook_ingest may
// not (it reads only the conflict columns): the INSERT path then does not learn the ids it stored, and the
// batch's notification says last_id null.
bool can_read_event_ids(Oid schema) {
    const Oid relid = get_relname_relid("segment_events", schema);
    if (!OidIsValid(relid)) {
        return false;
    }
    const AttrNumber id = get_attnum(relid, "id");
    return id != InvalidAttrNumber &&
           pg_attribute_aclcheck(relid, id, GetUserId(), ACL_SELECT) == ACLCHECK_OK;
}

// The INSERT into a partitioned segment_events (0.5 on), which cannot have ON CONFLICT (source_id,
// message_id): the first of each key of the batch goes into segment_event_keys, whose primary key decides
// what is new (ON CONFLICT DO NOTHING, with a new id), and only those events are inserted, with that id, in
// input order (the order RETURNING keeps). Same parameters as the unpartitioned INSERT, $16 included.
void append_partitioned_insert(StringInfo query, const char *nsp, bool returning_ids) {
    appendStringInfo(
        query,
        "WITH input AS (SELECT pg_catalog.generate_subscripts($1, 1) AS n, pg_catalog.unnest($1) AS "
        "source_id,"
        " pg_catalog.unnest($2) AS message_id, pg_catalog.unnest($3) AS type, pg_catalog.unnest($4) AS event,"
        " pg_catalog.unnest($5) AS name, pg_catalog.unnest($6) AS category, pg_catalog.unnest($7) AS user_id,"
        " pg_catalog.unnest($8) AS anonymous_id, pg_catalog.unnest($9) AS group_id,"
        " pg_catalog.unnest($10) AS previous_id, pg_catalog.unnest($11) AS ts,"
        " pg_catalog.unnest($12) AS original_timestamp, pg_catalog.unnest($13) AS sent_at,"
        " pg_catalog.unnest($14) AS received_at, pg_catalog.unnest($15) AS payload,"
        " pg_catalog.unnest($16) AS signature_verified),"
        " first AS (SELECT DISTINCT ON (source_id, message_id) * FROM input ORDER BY source_id, message_id, "
        "n),"
        " new_keys AS (INSERT INTO %1$s.segment_event_keys (source_id, message_id, received_at, event_id)"
        "  SELECT source_id, message_id, received_at, pg_catalog.nextval(%3$s)"
        "  FROM first ORDER BY n ON CONFLICT DO NOTHING RETURNING source_id, message_id, event_id)"
        " INSERT INTO %1$s.segment_events (id, source_id, message_id, type, event, name, category, user_id,"
        " anonymous_id, group_id, previous_id, \"timestamp\", original_timestamp, sent_at, received_at,"
        " payload, signature_verified)"
        " SELECT k.event_id, f.source_id, f.message_id, f.type, f.event, f.name, f.category, f.user_id,"
        " f.anonymous_id, f.group_id, f.previous_id, f.ts, f.original_timestamp, f.sent_at, f.received_at,"
        " f.payload, f.signature_verified"
        " FROM first f JOIN new_keys k ON k.source_id = f.source_id AND k.message_id = f.message_id ORDER BY "
        "f.n"
        " RETURNING source_id, message_id%2$s",
        nsp, returning_ids ? ", id" : "", quote_literal_cstr(psprintf("%s.segment_events_id_seq", nsp)));
}

// (Re)prepares the INSERTs when the schema changed, they were forgotten, signature_verified appeared
// (ALTER EXTENSION UPDATE while the worker runs) or went away, or RETURNING id is wanted or not any more.
void prepare_plans(Oid schema, bool returning_ids) {
    const bool signature_column = events_have_signature_column(schema);
    const bool partitioned = events_are_partitioned(schema);
    if (plans.schema == schema && !plans.stale && plans.signature_column == signature_column &&
        plans.partitioned == partitioned && plans.returning_ids == returning_ids &&
        plans.insert_events != nullptr && plans.insert_rejections != nullptr) {
        return;
    }
    if (plans.insert_events != nullptr) {
        SPI_freeplan(plans.insert_events);
        plans.insert_events = nullptr;
    }
    if (plans.insert_rejections != nullptr) {
        SPI_freeplan(plans.insert_rejections);
        plans.insert_rejections = nullptr;
    }
    plans.schema = InvalidOid;
    plans.stale = false;
    plans.returning_ids = returning_ids;
    const char *nsp = quoted_schema_name(schema);

    StringInfoData query;
    initStringInfo(&query);
    if (partitioned && signature_column) {
        append_partitioned_insert(&query, nsp, returning_ids);
    } else {
        appendStringInfo(
            &query,
            "INSERT INTO %s.segment_events (source_id, message_id, type, event, name, category, user_id,"
            " anonymous_id, group_id, previous_id, \"timestamp\", original_timestamp, sent_at,"
            " received_at, payload%s)"
            // unnest in the select list runs in a ProjectSet node, row by row in array order; in FROM (ROWS
            // FROM) each of the 16 functions would first be materialised into a tuplestore.
            " SELECT pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3), "
            "pg_catalog.unnest($4),"
            " pg_catalog.unnest($5), pg_catalog.unnest($6), pg_catalog.unnest($7), pg_catalog.unnest($8),"
            " pg_catalog.unnest($9), pg_catalog.unnest($10), pg_catalog.unnest($11), pg_catalog.unnest($12),"
            " pg_catalog.unnest($13), pg_catalog.unnest($14), pg_catalog.unnest($15)%s"
            " ON CONFLICT (source_id, message_id) DO NOTHING"
            " RETURNING source_id, message_id%s",
            nsp, signature_column ? ", signature_verified" : "",
            signature_column ? ", pg_catalog.unnest($16)" : "", returning_ids ? ", id" : "");
    }
    Oid event_types[kEventColumns] = {
        INT4ARRAYOID,        TEXTARRAYOID,        TEXTARRAYOID,        TEXTARRAYOID,
        TEXTARRAYOID,        TEXTARRAYOID,        TEXTARRAYOID,        TEXTARRAYOID,
        TEXTARRAYOID,        TEXTARRAYOID,        TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID,
        TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID, JSONBARRAYOID,       BOOLARRAYOID};
    SPIPlanPtr insert_events =
        SPI_prepare(query.data, signature_column ? kEventColumns : kEventColumns - 1, event_types);
    if (insert_events == nullptr) {
        elog(ERROR, "could not prepare the insert into segment_events: %s",
             SPI_result_code_string(SPI_result));
    }

    resetStringInfo(&query);
    appendStringInfo(
        &query,
        "INSERT INTO %s.segment_rejected (source_id, received_at, reason, detail, message_id, payload,"
        " raw) SELECT pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3),"
        " pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6), pg_catalog.unnest($7)",
        nsp);
    Oid rejection_types[kRejectionColumns] = {INT4ARRAYOID, TIMESTAMPTZARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
                                              TEXTARRAYOID, JSONBARRAYOID,       BYTEAARRAYOID};
    SPIPlanPtr insert_rejections = SPI_prepare(query.data, kRejectionColumns, rejection_types);
    if (insert_rejections == nullptr) {
        elog(ERROR, "could not prepare the insert into segment_rejected: %s",
             SPI_result_code_string(SPI_result));
    }
    SPI_keepplan(insert_events);
    SPI_keepplan(insert_rejections);
    plans.insert_events = insert_events;
    plans.insert_rejections = insert_rejections;
    plans.schema = schema;
    plans.signature_column = signature_column;
    plans.partitioned = partitioned;
}

bool same_text(Datum a, Datum b) {
    text *left = DatumGetTextPP(a);
    text *right = DatumGetTextPP(b);
    return VARSIZE_ANY_EXHDR(left) == VARSIZE_ANY_EXHDR(right) &&
           memcmp(VARDATA_ANY(left), VARDATA_ANY(right), VARSIZE_ANY_EXHDR(left)) == 0;
}

// Sorts event indexes by key, then by position (so the first of equal keys comes first).
int compare_event_positions(const void *a, const void *b, void *argument) {
    const PendingEvent *events = static_cast<const PendingEvent *>(argument);
    const int i = *static_cast<const int *>(a), j = *static_cast<const int *>(b);
    const int order = compare_events_by_key(&events[i], &events[j]);
    if (order != 0) {
        return order;
    }
    return i < j ? -1 : (i > j ? 1 : 0);
}

// Indexes of events[0, count) in key order (see compare_events_by_key), in the current memory context.
int *key_order(PendingEvent *events, int count) {
    int *order = static_cast<int *>(palloc(sizeof(int) * count));
    for (int i = 0; i < count; ++i) {
        order[i] = i;
    }
    qsort_arg(order, count, sizeof(int), compare_event_positions, events);
    return order;
}

// INSERT events[from, from + count) and mark each Stored or Duplicate. Rows go in in key order (see
// compare_events_by_key). RETURNING yields the inserted rows in input order (unnest order; rows skipped by ON
// CONFLICT are absent), so one pass pairs them up.
void insert_events(IngestBatch *batch, int from, int count) {
    int64 stored = 0;
    PendingEvent *events = batch->events + from;
    int *order = key_order(events, count);
    bool written =
        settings.direct_insert && insert_events_directly(batch->schema, events, order, count, &stored);
    if (!written && events_table_has_rules(batch->schema)) {
        insert_events_with_rules(batch->schema, events, order, count,
                                 &stored);  // ON CONFLICT is refused there
        written = true;
    }
    if (written) {
        batch->stored += stored;
        batch->duplicates += count - stored;
        return;
    }
    Datum *columns[kEventColumns];
    bool *nulls[kEventColumns];
    for (int c = 0; c < kEventColumns; ++c) {
        columns[c] = static_cast<Datum *>(palloc(sizeof(Datum) * count));
        nulls[c] = static_cast<bool *>(palloc0(sizeof(bool) * count));
    }
    for (int i = 0; i < count; ++i) {
        const PendingEvent &event = events[order[i]];
        columns[0][i] = Int32GetDatum(event.source_id);
        for (int t = 0; t < 9; ++t) {
            columns[1 + t][i] = event.text_columns[t];
            nulls[1 + t][i] = event.text_nulls[t];
        }
        columns[10][i] = TimestampTzGetDatum(event.timestamp);
        columns[11][i] = TimestampTzGetDatum(event.original_timestamp);
        nulls[11][i] = event.original_timestamp_null;
        columns[12][i] = TimestampTzGetDatum(event.sent_at);
        nulls[12][i] = event.sent_at_null;
        columns[13][i] = TimestampTzGetDatum(event.received_at);
        columns[14][i] = JsonbPGetDatum(event.payload);
        columns[15][i] = BoolGetDatum(event.signature_verified);
    }
    static const Oid element_types[kEventColumns] = {
        INT4OID, TEXTOID, TEXTOID,        TEXTOID,        TEXTOID,        TEXTOID,        TEXTOID,  TEXTOID,
        TEXTOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID, JSONBOID, BOOLOID};
    prepare_plans(batch->schema, can_read_event_ids(batch->schema));  // the current user's privilege
    Datum arguments[kEventColumns];
    const int argument_count = plans.signature_column ? kEventColumns : kEventColumns - 1;
    for (int c = 0; c < argument_count; ++c) {
        arguments[c] = make_array(columns[c], nulls[c], count, element_types[c]);
    }
    // A transaction id before the first id is drawn (see direct_insert.cc).
    (void)GetCurrentTransactionId();
    int rc = SPI_execute_plan(plans.insert_events, arguments, nullptr, false, 0);
    if (rc != SPI_OK_INSERT_RETURNING) {
        elog(ERROR, "insert into segment_events failed: %s", SPI_result_code_string(rc));
    }
    uint64 returned = 0;
    for (int i = 0; i < count; ++i) {
        PendingEvent &event = events[order[i]];
        event.outcome = EventOutcome::Duplicate;
        event.id = 0;
        if (returned < SPI_processed) {
            HeapTuple row = SPI_tuptable->vals[returned];
            bool source_null, id_null, row_id_null = true;
            Datum source = SPI_getbinval(row, SPI_tuptable->tupdesc, 1, &source_null);
            Datum id = SPI_getbinval(row, SPI_tuptable->tupdesc, 2, &id_null);
            Datum row_id =
                plans.returning_ids ? SPI_getbinval(row, SPI_tuptable->tupdesc, 3, &row_id_null) : 0;
            if (!source_null && !id_null && DatumGetInt32(source) == event.source_id &&
                same_text(id, event.text_columns[0])) {
                event.outcome = EventOutcome::Stored;
                event.id = row_id_null ? 0 : DatumGetInt64(row_id);
                ++returned;
            }
        }
    }
    // A trigger that rewrote messageId would defeat the pairing; the totals still come from the row count.
    batch->stored += SPI_processed;
    batch->duplicates += count - static_cast<int64>(SPI_processed);
    SPI_freetuptable(SPI_tuptable);
}

void insert_rejections(IngestBatch *batch) {
    const int count = batch->rejection_count;
    if (count == 0) {
        return;
    }
    Datum *columns[kRejectionColumns];
    bool *nulls[kRejectionColumns];
    for (int c = 0; c < kRejectionColumns; ++c) {
        columns[c] = static_cast<Datum *>(palloc(sizeof(Datum) * count));
        nulls[c] = static_cast<bool *>(palloc0(sizeof(bool) * count));
    }
    for (int i = 0; i < count; ++i) {
        const PendingRejection &rejection = batch->rejections[i];
        columns[0][i] = Int32GetDatum(rejection.source_id);
        columns[1][i] = TimestampTzGetDatum(rejection.received_at);
        columns[2][i] = CStringGetTextDatum(rejection.reason);
        nulls[3][i] = rejection.detail == nullptr;
        columns[3][i] = rejection.detail ? CStringGetTextDatum(rejection.detail) : Datum(0);
        nulls[4][i] = rejection.message_id == nullptr;
        columns[4][i] = rejection.message_id ? CStringGetTextDatum(rejection.message_id) : Datum(0);
        nulls[5][i] = rejection.payload == nullptr;
        columns[5][i] = rejection.payload ? JsonbPGetDatum(rejection.payload) : Datum(0);
        bytea *raw = rejection.raw;
        if (raw == nullptr && rejection.payload != nullptr) {
            char *text = JsonbToCString(nullptr, &rejection.payload->root, VARSIZE(rejection.payload));
            raw = reinterpret_cast<bytea *>(cstring_to_text(text));
        }
        nulls[6][i] = raw == nullptr;
        columns[6][i] = PointerGetDatum(raw);
    }
    static const Oid element_types[kRejectionColumns] = {INT4OID, TIMESTAMPTZOID, TEXTOID, TEXTOID,
                                                         TEXTOID, JSONBOID,       BYTEAOID};
    Datum arguments[kRejectionColumns];
    for (int c = 0; c < kRejectionColumns; ++c) {
        arguments[c] = make_array(columns[c], nulls[c], count, element_types[c]);
    }
    int rc = SPI_execute_plan(plans.insert_rejections, arguments, nullptr, false, 0);
    if (rc != SPI_OK_INSERT) {
        elog(ERROR, "insert into segment_rejected failed: %s", SPI_result_code_string(rc));
    }
    batch->rejected += count;
}

// Runs insert_events for one range inside a subtransaction. Returns null on success; on failure, the error
// (copied into `context`) after the subtransaction has been rolled back and the error state flushed.
ErrorData *try_insert_events(IngestBatch *batch, int from, int count, MemoryContext context) {
    ResourceOwner owner = CurrentResourceOwner;
    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(context);
    ErrorData *volatile error = nullptr;
    PG_TRY();
    {
        insert_events(batch, from, count);
        ReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(context);
        CurrentResourceOwner = owner;
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(context);
        error = CopyErrorData();
        FlushErrorState();
        RollbackAndReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(context);
        CurrentResourceOwner = owner;
    }
    PG_END_TRY();
    return error;
}

// try_insert_events, again after a unique violation: another transaction stored one of these messages between
// our probe and our insert, and the insert waited for it to commit; the next probe sees it as a duplicate.
// (A violation that persists, from a trigger's table for instance, is returned after the last attempt.)
ErrorData *insert_with_retries(IngestBatch *batch, int from, int count) {
    constexpr int kAttempts = 3;
    ErrorData *error = nullptr;
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
        error = try_insert_events(batch, from, count, batch->context);
        if (error == nullptr || error->sqlerrcode != ERRCODE_UNIQUE_VIOLATION) {
            break;
        }
    }
    return error;
}

}  // namespace

Datum make_array(Datum *elements, bool *nulls, int count, Oid element_type) {
    int16 length;
    bool by_value;
    char align;
    get_typlenbyvalalign(element_type, &length, &by_value, &align);
    int dims[1] = {count};
    int lower_bounds[1] = {1};
    return PointerGetDatum(
        construct_md_array(elements, nulls, 1, dims, lower_bounds, element_type, length, by_value, align));
}

bool error_is_about_the_message(int sqlerrcode) {
    switch (ERRCODE_TO_CATEGORY(sqlerrcode)) {
        case ERRCODE_CONNECTION_EXCEPTION:
        case ERRCODE_FEATURE_NOT_SUPPORTED:
        case ERRCODE_INVALID_TRANSACTION_STATE:  // includes read-only transactions on a standby
        case ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION:
        case ERRCODE_INVALID_CATALOG_NAME:
        case ERRCODE_INVALID_SCHEMA_NAME:
        case ERRCODE_TRANSACTION_ROLLBACK:                   // serialization failures, deadlocks
        case ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION:  // missing table or privilege: fix and retry
        case ERRCODE_INSUFFICIENT_RESOURCES:                 // disk full, out of memory
        case ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE:       // lock not available
        case ERRCODE_OPERATOR_INTERVENTION:                  // cancel, statement timeout, shutdown
        case ERRCODE_SYSTEM_ERROR:
        case ERRCODE_CONFIG_FILE_ERROR:
        case ERRCODE_FDW_ERROR:
        case ERRCODE_INTERNAL_ERROR:
            return false;
        default:
            return true;
    }
}

void ingest_batch_flush(IngestBatch *batch) {
    MemoryContext caller = MemoryContextSwitchTo(batch->context);
    prepare_plans(batch->schema, plans.returning_ids);
    if (batch->event_count > 0) {
        ErrorData *error = insert_with_retries(batch, 0, batch->event_count);
        if (error != nullptr) {
            if (!error_is_about_the_message(error->sqlerrcode)) {
                ReThrowError(error);
            }
            // Some message in the batch was refused: store the others one by one, dead-letter the refused.
            // In key order, like every write: each row's subtransaction keeps its locks until the COMMIT.
            const int count = batch->event_count;
            int *order = key_order(batch->events, count);
            for (int k = 0; k < count; ++k) {
                const int i = order[k];
                error = insert_with_retries(batch, i, 1);
                if (error == nullptr) {
                    continue;
                }
                if (!error_is_about_the_message(error->sqlerrcode)) {
                    ReThrowError(error);
                }
                PendingEvent &event = batch->events[i];
                event.outcome = EventOutcome::Rejected;
                event.id = 0;
                PendingRejection rejection{event.source_id,
                                           event.request,
                                           event.received_at,
                                           "refused_by_database",
                                           error->detail ? psprintf("%s (%s)", error->message, error->detail)
                                                         : pstrdup(error->message),
                                           TextDatumGetCString(event.text_columns[0]),
                                           event.payload,
                                           nullptr};
                add_rejection(batch, rejection);
            }
        }
    }
    reject_conflicting_duplicates(batch);
    insert_deletion_requests(batch);
    insert_rejections(batch);
    for (int i = 0; i < batch->event_count; ++i) {
        const PendingEvent &event = batch->events[i];
        if (event.outcome == EventOutcome::Stored && event.id > batch->last_id) {
            batch->last_id = event.id;
        }
    }
    MemoryContextSwitchTo(caller);
}

void ingest_forget_plans() {
    plans.stale = true;
    forget_rule_insert_plans();
}

int compare_events_by_key(const PendingEvent *a, const PendingEvent *b) {
    if (a->source_id != b->source_id) {
        return a->source_id < b->source_id ? -1 : 1;
    }
    text *left = DatumGetTextPP(a->text_columns[0]);
    text *right = DatumGetTextPP(b->text_columns[0]);
    const int left_length = VARSIZE_ANY_EXHDR(left), right_length = VARSIZE_ANY_EXHDR(right);
    const int order = memcmp(VARDATA_ANY(left), VARDATA_ANY(right), Min(left_length, right_length));
    if (order != 0) {
        return order;
    }
    return left_length < right_length ? -1 : (left_length > right_length ? 1 : 0);
}

}  // namespace segment_pg
