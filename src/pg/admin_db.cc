// The debugger page's data: one read-only query, in a transaction of its own, run as the extension's owner
// (the ingest role may only read segment_sources and insert events) the way the warehouse worker runs its
// passes, never inside an ingest batch. It is bounded (at most 200 rows of each kind, payloads over 64kB
// left out) and has a statement and lock timeout of kAdminQueryTimeoutMs, so that an admin request never
// holds up ingest for long. The worker's backend arms the statement timeout itself: Postgres arms
// statement_timeout only for client queries.
#include "pg/worker_state.h"
#include "pg/admin_db.h"

#include "pg/postgres_headers.h"

extern "C" {
#include "pgstat.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
}

namespace segment_pg {
namespace {

constexpr int kAdminQueryTimeoutMs = 250;

// $1 events after this id, $2 dead letters after this id, $3 the source name (NULL: all), $4 rows of each.
// Payloads whose stored size is over 64kB are left out (payload_bytes says how large they are).
const char *const kRecentQuery =
    "WITH chosen AS (SELECT id FROM %1$s.segment_sources WHERE name = $3)"
    " SELECT"
    " (SELECT coalesce(json_agg(json_build_object('id', s.id, 'name', s.name, 'enabled', s.enabled)"
    "   ORDER BY s.name), '[]') FROM %1$s.segment_sources s)::text,"
    " (SELECT coalesce(json_agg(json_build_object('id', e.id, 'source_id', e.source_id,"
    "   'received_at', e.received_at, 'type', e.type, 'event', e.event, 'message_id', e.message_id,"
    "   'payload', CASE WHEN e.payload_bytes <= 65536 THEN e.payload END, 'payload_bytes', e.payload_bytes)"
    "   ORDER BY e.id DESC), '[]')"
    "  FROM (SELECT id, source_id, received_at, type, event, message_id, payload,"
    "   pg_catalog.pg_column_size(payload) AS payload_bytes FROM %1$s.segment_events"
    "   WHERE id > $1 AND ($3 IS NULL OR source_id IN (SELECT id FROM chosen)) ORDER BY id DESC LIMIT $4) "
    "e)::text,"
    " (SELECT coalesce(json_agg(json_build_object('id', r.id, 'source_id', r.source_id,"
    "   'received_at', r.received_at, 'reason', r.reason, 'detail', r.detail, 'message_id', r.message_id,"
    "   'payload', CASE WHEN r.payload_bytes <= 65536 THEN r.payload END, 'payload_bytes', r.payload_bytes,"
    "   'raw', CASE WHEN r.payload IS NULL THEN"
    "     pg_catalog.encode(pg_catalog.substr(r.raw, 1, 65536), 'escape') END)"
    "   ORDER BY r.id DESC), '[]')"
    "  FROM (SELECT id, source_id, received_at, reason, detail, message_id, payload, raw,"
    "   pg_catalog.pg_column_size(payload) AS payload_bytes FROM %1$s.segment_rejected"
    "   WHERE id > $2 AND ($3 IS NULL OR source_id IN (SELECT id FROM chosen)) ORDER BY id DESC LIMIT $4) "
    "r)::text";

void set_local(const char *name, const char *value) {
    set_config_option(name, value, PGC_SUSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
}

}  // namespace

AdminRecent admin_read_recent(int64 after_event, int64 after_rejected, const char *source, int limit) {
    MemoryContext caller = CurrentMemoryContext;
    AdminRecent recent = {nullptr, nullptr, nullptr};
    pgstat_report_activity(STATE_RUNNING, "segment_webhook: reading recent events for the admin page");
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", kAdminQueryTimeoutMs);
    set_local("lock_timeout", timeout);
    set_local("transaction_read_only", "on");
    SPI_connect();
    PushActiveSnapshot(GetTransactionSnapshot());
    int rc = SPI_execute(
        "SELECT e.extowner, quote_ident(n.nspname) FROM pg_catalog.pg_extension e "
        "JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'segment_webhook'",
        true, 1);
    if (rc != SPI_OK_SELECT || SPI_processed != 1) {
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                        errmsg("the segment_webhook extension is not installed in the worker's database")));
    }
    bool is_null;
    const Oid owner =
        DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &is_null));
    char *query = psprintf(kRecentQuery, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
    Oid saved_user;
    int saved_context;
    GetUserIdAndSecContext(&saved_user, &saved_context);
    // As the owner of the extension's tables; SET ROLE cannot escape it. AbortTransaction restores the user
    // should the query fail.
    SetUserIdAndSecContext(owner, saved_context | SECURITY_LOCAL_USERID_CHANGE);
    Oid types[4] = {INT8OID, INT8OID, TEXTOID, INT4OID};
    Datum values[4] = {Int64GetDatum(after_event), Int64GetDatum(after_rejected),
                       source ? CStringGetTextDatum(source) : Datum(0), Int32GetDatum(limit)};
    const char nulls[4] = {' ', ' ', source ? ' ' : 'n', ' '};
    enable_timeout_after(STATEMENT_TIMEOUT, kAdminQueryTimeoutMs);
    rc = SPI_execute_with_args(query, 4, types, values, nulls, true, 1);
    disable_timeout(STATEMENT_TIMEOUT, false);
    SetUserIdAndSecContext(saved_user, saved_context);
    if (rc != SPI_OK_SELECT || SPI_processed != 1) {
        elog(ERROR, "could not read the recent events: %s", SPI_result_code_string(rc));
    }
    const char *texts[3];
    for (int column = 0; column < 3; ++column) {
        char *value = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, column + 1);
        texts[column] = MemoryContextStrdup(caller, value != nullptr ? value : "[]");
    }
    recent.sources = texts[0];
    recent.events = texts[1];
    recent.rejected = texts[2];
    PopActiveSnapshot();
    SPI_finish();
    CommitTransactionCommand();
    MemoryContextSwitchTo(caller);
    pgstat_report_activity(STATE_IDLE, nullptr);
    return recent;
}

void admin_abort_transaction() {
    disable_timeout(STATEMENT_TIMEOUT, false);
    abort_worker_transaction();
    pgstat_report_activity(STATE_IDLE, nullptr);
}

}  // namespace segment_pg
