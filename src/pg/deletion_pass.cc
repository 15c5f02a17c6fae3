// The deletion and maintenance steps of the warehouse worker: see deletion_pass.h. Plain C-style code over
// Postgres; it never runs in an ingest transaction, and it has its own error boundary (logged once while an
// error lasts).
#include "pg/deletion_pass.h"

#include "pg/reorder_worker.h"

#include "pg/postgres_headers.h"

extern "C" {
#include "access/xlog.h"
#include "pgstat.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

namespace segment_pg {

bool call_as_owner(const char *lookup, bool *absent) {
    bool result = false;
    *absent = true;
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    SPI_connect();
    PushActiveSnapshot(GetTransactionSnapshot());
    int rc = SPI_execute(lookup, true, 1);
    if (rc == SPI_OK_SELECT && SPI_processed == 1) {
        *absent = false;
        bool is_null, probe_null;
        const Oid owner =
            DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &is_null));
        char *run = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
        (void)SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &probe_null);
        char *probe = probe_null ? nullptr : SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
        Oid session_user_id;
        int security_context;
        GetUserIdAndSecContext(&session_user_id, &security_context);
        // The owner may delete and create; SET ROLE cannot escape this.
        SetUserIdAndSecContext(owner, security_context | SECURITY_LOCAL_USERID_CHANGE);
        rc = probe == nullptr ? SPI_OK_SELECT : SPI_execute(probe, true, 1);
        if (rc == SPI_OK_SELECT && (probe == nullptr || SPI_processed == 1)) {
            pgstat_report_activity(STATE_RUNNING, run);
            // PL/pgSQL needs an outer snapshot; each of its statements takes a fresh one.
            PushActiveSnapshot(GetTransactionSnapshot());
            rc = SPI_execute(run, false, 1);
            PopActiveSnapshot();
            if (rc == SPI_OK_SELECT && SPI_processed == 1) {
                const Datum value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &is_null);
                result =
                    !is_null && SPI_tuptable->tupdesc->attrs[0].atttypid == BOOLOID && DatumGetBool(value);
            }
        }
        SetUserIdAndSecContext(session_user_id, security_context);
    }
    PopActiveSnapshot();
    SPI_finish();
    CommitTransactionCommand();
    pgstat_report_activity(STATE_IDLE, nullptr);
    return result;
}

namespace {

// The function exists from version 0.4 on; the pending rows are looked for before anything else runs.
const char *const kDeletionsLookup =
    "SELECT e.extowner, pg_catalog.format('SELECT %I.segment_run_deletions()', n.nspname),"
    " pg_catalog.format('SELECT FROM %I.segment_deletions WHERE status = ''pending'' LIMIT 1', n.nspname)"
    " FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace"
    " WHERE e.extname = 'segment_webhook' AND EXISTS (SELECT FROM pg_catalog.pg_proc p"
    " WHERE p.pronamespace = n.oid AND p.proname = 'segment_run_deletions')"
    " AND pg_catalog.to_regclass(pg_catalog.format('%I.segment_deletions', n.nspname)) IS NOT NULL";

// From version 0.5 on.
const char *const kMaintenanceLookup =
    "SELECT e.extowner, pg_catalog.format('SELECT %I.segment_run_maintenance()', n.nspname), NULL::text"
    " FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace"
    " WHERE e.extname = 'segment_webhook' AND EXISTS (SELECT FROM pg_catalog.pg_proc p"
    " WHERE p.pronamespace = n.oid AND p.proname = 'segment_run_maintenance')";

struct Step {
    const char *lookup;
    const char *failure;  // what the warning says could not be done
    const char *retry;    // when it is tried again
    const char *recovery;
    char last_error[512];
};
Step deletions{kDeletionsLookup,
               "could not carry out the pending deletion requests",
               "They stay pending and are tried again every second",
               "deletion requests are carried out again",
               {}};
Step maintenance{kMaintenanceLookup,
                 "maintenance (day partitions, retention) failed",
                 "It is tried again in a minute",
                 "maintenance runs again",
                 {}};

// Runs a step inside its own error boundary, so that a failure never holds up what follows. Returns the
// step's result (false, with *failed set, when it raised).
bool run_step(Step &step, bool *failed, bool *absent) {
    *failed = false;
    *absent = true;
    volatile bool result = false;
    if (RecoveryInProgress()) {
        return false;  // a standby: the primary does it, and its changes reach this server through its WAL
    }
    MemoryContext caller = CurrentMemoryContext;
    PG_TRY();
    {
        result = call_as_owner(step.lookup, absent);
        if (step.last_error[0] != '\0') {
            ereport(LOG, (errmsg("segment_webhook: %s", step.recovery)));
            step.last_error[0] = '\0';
        }
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(caller);
        ErrorData *error = CopyErrorData();
        FlushErrorState();
        AbortCurrentTransaction();
        pgstat_report_activity(STATE_IDLE, nullptr);
        if (strncmp(step.last_error, error->message, sizeof step.last_error - 1) != 0) {
            ereport(WARNING, (errcode(error->sqlerrcode),
                              errmsg("segment_webhook: %s: %s", step.failure, error->message),
                              errdetail("%s; this is logged once while the error lasts.", step.retry)));
            snprintf(step.last_error, sizeof step.last_error, "%s", error->message);
        }
        FreeErrorData(error);
        *failed = true;
    }
    PG_END_TRY();
    MemoryContextSwitchTo(caller);
    return result;
}

constexpr int64 kMaintenanceEveryMs = 3600 * 1000;
constexpr int64 kMaintenanceSoonMs = 5 * 1000;
constexpr int64 kMaintenanceAfterFailureMs = 60 * 1000;
TimestampTz next_maintenance = 0;  // 0: when the worker starts

}  // namespace

void run_pending_deletions() {
    bool failed, absent;
    (void)run_step(deletions, &failed, &absent);
}

void run_maintenance_when_due() {
    const TimestampTz now = GetCurrentTimestamp();
    if (now < next_maintenance) {
        return;
    }
    bool failed, absent;
    const bool again = run_step(maintenance, &failed, &absent);
    if (!failed && !absent) {
        start_reorder_worker();  // the closed day partitions, in a process of their own
    }
    // Not installed yet (or older than 0.5): looked for again soon, so that a CREATE EXTENSION or ALTER
    // EXTENSION UPDATE gets its day partitions within seconds.
    const int64 wait_ms =
        failed ? kMaintenanceAfterFailureMs : (again || absent ? kMaintenanceSoonMs : kMaintenanceEveryMs);
    next_maintenance = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms);
}

}  // namespace segment_pg
