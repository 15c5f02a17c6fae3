// The deletion pass of the warehouse worker: see deletion_pass.h. Plain C-style code over Postgres; it never
// runs in an ingest transaction, and it has its own error boundary (logged once while an error lasts).
#include "pg/deletion_pass.h"

#include "pg/postgres_headers.h"

extern "C" {
#include "access/xlog.h"
#include "pgstat.h"
#include "utils/snapmgr.h"
}

namespace segment_pg {
namespace {

char last_error[512];

void run_deletions_once() {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    SPI_connect();
    PushActiveSnapshot(GetTransactionSnapshot());
    // The function exists from version 0.4 on; the pending rows are looked for before anything else runs.
    int rc = SPI_execute(
        "SELECT e.extowner, pg_catalog.format('SELECT %I.segment_run_deletions()', n.nspname),"
        " pg_catalog.format('SELECT FROM %I.segment_deletions WHERE status = ''pending'' LIMIT 1', n.nspname)"
        " FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace"
        " WHERE e.extname = 'segment_webhook' AND EXISTS (SELECT FROM pg_catalog.pg_proc p"
        " WHERE p.pronamespace = n.oid AND p.proname = 'segment_run_deletions')"
        " AND pg_catalog.to_regclass(pg_catalog.format('%I.segment_deletions', n.nspname)) IS NOT NULL",
        true, 1);
    if (rc == SPI_OK_SELECT && SPI_processed == 1) {
        bool is_null;
        const Oid owner =
            DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &is_null));
        char *run = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
        char *probe = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
        Oid session_user_id;
        int security_context;
        GetUserIdAndSecContext(&session_user_id, &security_context);
        // The owner may delete; SET ROLE cannot escape this.
        SetUserIdAndSecContext(owner, security_context | SECURITY_LOCAL_USERID_CHANGE);
        rc = SPI_execute(probe, true, 1);
        if (rc == SPI_OK_SELECT && SPI_processed == 1) {
            pgstat_report_activity(STATE_RUNNING, run);
            // PL/pgSQL needs an outer snapshot; each of its statements takes a fresh one.
            PushActiveSnapshot(GetTransactionSnapshot());
            (void)SPI_execute(run, false, 1);
            PopActiveSnapshot();
        }
        SetUserIdAndSecContext(session_user_id, security_context);
    }
    PopActiveSnapshot();
    SPI_finish();
    CommitTransactionCommand();
    pgstat_report_activity(STATE_IDLE, nullptr);
}

}  // namespace

void run_pending_deletions() {
    if (RecoveryInProgress()) {
        return;  // a standby: the primary deletes, and the deletions reach this server through its WAL
    }
    MemoryContext caller = CurrentMemoryContext;
    PG_TRY();
    {
        run_deletions_once();
        if (last_error[0] != '\0') {
            ereport(LOG, (errmsg("segment_webhook: deletion requests are carried out again")));
            last_error[0] = '\0';
        }
    }
    PG_CATCH();
    {
        // Its own error boundary, so that a failure here never holds up the warehouse pass that follows.
        MemoryContextSwitchTo(caller);
        ErrorData *error = CopyErrorData();
        FlushErrorState();
        AbortCurrentTransaction();
        pgstat_report_activity(STATE_IDLE, nullptr);
        if (strncmp(last_error, error->message, sizeof last_error - 1) != 0) {
            ereport(
                WARNING,
                (errcode(error->sqlerrcode),
                 errmsg("segment_webhook: could not carry out the pending deletion requests: %s",
                        error->message),
                 errdetail("They stay pending and are tried again every second; this is logged once while "
                           "the error lasts.")));
            snprintf(last_error, sizeof last_error, "%s", error->message);
        }
        FreeErrorData(error);
    }
    PG_END_TRY();
    MemoryContextSwitchTo(caller);
}

}  // namespace segment_pg
