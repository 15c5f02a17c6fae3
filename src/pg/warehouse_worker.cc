// The warehouse worker: about once a second, in a transaction of its own and as the extension's owner, it
// runs segment_warehouse_sync(), which examines the events committed since its last pass and adds the
// warehouse columns and relations they call for (see sql/segment_webhook--0.3.sql). It never touches the
// ingest path: no DDL runs in an ingest transaction, and the ingest role needs no DDL right. It idles while
// segment_webhook.warehouse is off or the installed extension is older than 0.3. Errors are logged once while
// they last and the worker tries again ten seconds later (a canceled pass: a second later); nothing here may
// end the server.
#include "pg/deletion_pass.h"
#include "pg/settings.h"

#include <setjmp.h>

#include "pg/postgres_headers.h"

extern "C" {
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"

PGDLLEXPORT void segment_webhook_warehouse_main(Datum argument);
}

namespace segment_pg {
namespace {

constexpr long kPassIntervalMs = 1000;
constexpr long kRetryAfterErrorMs = 10000;
// A pass examines at most this many ids; a full pass means more are waiting.
constexpr int64 kPassLimit = 100000;

char last_error[512];
bool extension_ready_logged = false;

// One pass. Returns how many events it examined, or -1 when there is nothing to do (the extension is missing
// or older than 0.3).
int64 run_pass() {
    int64 examined = -1;
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    SPI_connect();
    PushActiveSnapshot(GetTransactionSnapshot());
    int rc = SPI_execute(
        "SELECT e.extowner, quote_ident(n.nspname) FROM pg_catalog.pg_extension e "
        "JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'segment_webhook' "
        "AND pg_catalog.string_to_array(e.extversion, '.')::int[] >= '{0,3}'",
        true, 1);
    PopActiveSnapshot();
    if (rc == SPI_OK_SELECT && SPI_processed == 1) {
        bool is_null;
        const Oid owner =
            DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &is_null));
        char *query = psprintf("SELECT %s.segment_warehouse_sync()",
                               SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
        if (!extension_ready_logged) {
            ereport(LOG,
                    (errmsg("segment_webhook: warehouse worker keeps the warehouse relations up to date")));
            extension_ready_logged = true;
        }
        Oid session_user_id;
        int security_context;
        GetUserIdAndSecContext(&session_user_id, &security_context);
        // The views belong to the extension's owner, who creates them; SET ROLE cannot escape this.
        SetUserIdAndSecContext(owner, security_context | SECURITY_LOCAL_USERID_CHANGE);
        pgstat_report_activity(STATE_RUNNING, query);
        // PL/pgSQL needs an outer snapshot; each of its statements still takes a fresh one (READ COMMITTED),
        // which the pass relies on.
        PushActiveSnapshot(GetTransactionSnapshot());
        rc = SPI_execute(query, false, 1);
        PopActiveSnapshot();
        if (rc == SPI_OK_SELECT && SPI_processed == 1) {
            examined =
                DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &is_null));
        }
        SetUserIdAndSecContext(session_user_id, security_context);
    } else {
        extension_ready_logged = false;
    }
    SPI_finish();
    CommitTransactionCommand();
    pgstat_report_activity(STATE_IDLE, nullptr);
    pgstat_report_stat(false);
    return examined;
}

}  // namespace
}  // namespace segment_pg

extern "C" PGDLLEXPORT void segment_webhook_warehouse_main(Datum) {
    using namespace segment_pg;
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    if (IsBinaryUpgrade) {
        proc_exit(0);
    }
    BackgroundWorkerInitializeConnection(settings.database, nullptr, 0);
    pgstat_report_appname("segment_webhook warehouse");
    MemoryContext worker_context =
        AllocSetContextCreate(TopMemoryContext, "segment_webhook warehouse", ALLOCSET_DEFAULT_SIZES);
    MemoryContextSwitchTo(worker_context);

    volatile long wait_ms = kPassIntervalMs;
    // The error boundary: log once while the same error lasts, abort, try again later.
    sigjmp_buf error_boundary;
    if (sigsetjmp(error_boundary, 1) != 0) {
        // The error context callbacks (PL/pgSQL's) registered by the frames the longjmp left are gone.
        error_context_stack = nullptr;
        HOLD_INTERRUPTS();
        MemoryContextSwitchTo(worker_context);
        ErrorData *error = CopyErrorData();
        FlushErrorState();
        AbortCurrentTransaction();
        pgstat_report_activity(STATE_IDLE, nullptr);
        RESUME_INTERRUPTS();
        if (strncmp(last_error, error->message, sizeof last_error - 1) != 0) {
            ereport(
                WARNING,
                (errcode(error->sqlerrcode), errmsg("segment_webhook: warehouse worker: %s", error->message),
                 errdetail("The warehouse relations are not updated meanwhile; it is tried again "
                           "every %ld seconds and logged once while the error lasts.",
                           kRetryAfterErrorMs / 1000)));
            snprintf(last_error, sizeof last_error, "%s", error->message);
        }
        // A canceled pass is made again at the usual pace; any other error waits a while.
        wait_ms = error->sqlerrcode == ERRCODE_QUERY_CANCELED ? kPassIntervalMs : kRetryAfterErrorMs;
        FreeErrorData(error);
        MemoryContextReset(worker_context);
    }
    PG_exception_stack = &error_boundary;

    for (;;) {
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, wait_ms, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        // pg_cancel_backend() cancels the pass being made, if any; between passes there is nothing to cancel.
        QueryCancelPending = false;
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
        }
        wait_ms = kPassIntervalMs;
        // Deletion notifications recorded by the ingest workers, warehouse on or off.
        run_pending_deletions();
        run_maintenance_when_due();
        if (!settings.warehouse) {
            continue;
        }
        const int64 examined = run_pass();
        if (examined >= 0 && last_error[0] != '\0') {
            ereport(LOG, (errmsg("segment_webhook: warehouse worker updates the warehouse relations again")));
            last_error[0] = '\0';
        }
        // A backlog (an upgrade of a large table, a burst): go on at once.
        if (examined >= kPassLimit) {
            wait_ms = 0;
        }
        MemoryContextReset(worker_context);
    }
}
