// Every transaction the HTTP worker runs, its catalog look-ups and how it reports database failures. See
// worker_state.h. Plain C-style frames: they call Postgres and may longjmp, so the only C++ objects they
// touch are reached through `state` inside run_cpp(). Core headers (through worker_state.h) before any
// Postgres header.
#include "pg/worker_state.h"
#include "pg/catalog.h"
#include "pg/cpp_guard.h"
#include "pg/settings.h"

#include "pg/postgres_headers.h"

extern "C" {
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
}

namespace segment_pg {
namespace {

// The user and security context the worker connected with, restored after each transaction.
Oid session_user_id = InvalidOid;
int session_security_context = 0;
bool missing_role_warned = false;

// The role that runs the ingest SQL: segment_webhook.role when set (the worker connected as it), else the
// extension's segment_webhook_ingest role. Without that role: the connecting role only for an installation of
// version 0.1 not yet updated (with a warning); an error when a later version's role was dropped.
Oid ingest_user() {
    if (settings.role[0] != '\0') {
        return session_user_id;
    }
    const Oid role = find_ingest_role();
    if (OidIsValid(role)) {
        missing_role_warned = false;
        return role;
    }
    // Missing: before CREATE EXTENSION (nothing is ingested), or an installation of 0.1 not yet updated (the
    // worker ingests as 0.1 did, and says so once). From 0.2 on, someone dropped it: never fall back to a
    // superuser then.
    char *version = nullptr;
    const Oid schema = find_extension(&version);
    if (OidIsValid(schema) && version != nullptr && strcmp(version, "0.1") != 0) {
        ereport(
            ERROR,
            (errcode(ERRCODE_UNDEFINED_OBJECT),
             errmsg("role \"%s\" of extension segment_webhook %s does not exist", kIngestRoleName, version),
             errhint("Create it again with the grants README.md lists (CREATE ROLE %s NOLOGIN; GRANT "
                     "USAGE ON SCHEMA ..., SELECT ON segment_sources, INSERT ON segment_events, "
                     "segment_rejected, SELECT (source_id, message_id) ON segment_events, SELECT ON "
                     "segment_suppressions, INSERT (source_id, user_id) ON segment_deletions, INSERT, "
                     "SELECT (source_id, message_id, event_id) ON segment_event_keys, USAGE ON SEQUENCE "
                     "segment_events_id_seq).",
                     kIngestRoleName)));
    }
    if (OidIsValid(schema) && !missing_role_warned) {
        missing_role_warned = true;
        ereport(WARNING,
                (errmsg("segment_webhook: role \"%s\" does not exist; ingesting as the bootstrap superuser",
                        kIngestRoleName),
                 errhint("Run ALTER EXTENSION segment_webhook UPDATE to create it.")));
    }
    return session_user_id;
}

}  // namespace

void begin_worker_transaction() {
    if (!OidIsValid(session_user_id)) {
        GetUserIdAndSecContext(&session_user_id, &session_security_context);
    }
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    // Everything the transaction runs (our SQL, and any trigger a user adds to segment_events) runs as the
    // ingest role; the flag keeps SET ROLE and SET SESSION AUTHORIZATION from escaping it.
    SetUserIdAndSecContext(ingest_user(), session_security_context | SECURITY_LOCAL_USERID_CHANGE);
    SPI_connect();
    PushActiveSnapshot(GetTransactionSnapshot());
}

void commit_worker_transaction() {
    PopActiveSnapshot();
    SPI_finish();
    // The answers go out after this COMMIT: it must reach the local WAL on disk first, whatever
    // synchronous_commit the server, database, role or a trigger chose. A stronger setting (on, remote_write,
    // remote_apply: waiting for synchronous standbys) is kept. SET LOCAL: it lasts until the commit record.
    if (synchronous_commit < SYNCHRONOUS_COMMIT_LOCAL_FLUSH) {
        set_config_option("synchronous_commit", "local", PGC_SUSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0,
                          false);
    }
    CommitTransactionCommand();
    SetUserIdAndSecContext(session_user_id, session_security_context);
}

void abort_worker_transaction() {
    AbortCurrentTransaction();
    if (OidIsValid(session_user_id)) {
        SetUserIdAndSecContext(session_user_id, session_security_context);
    }
}

void report_ingest_role() {
    if (settings.role[0] == '\0') {
        ereport(LOG, (errmsg("segment_webhook: worker %d runs the ingest SQL as role \"%s\"", worker_number,
                             kIngestRoleName)));
        return;
    }
    // Connected as segment_webhook.role: its superuser bit is read from the catalog in a transaction.
    StartTransactionCommand();
    const bool superuser = superuser_arg(GetUserId());
    CommitTransactionCommand();
    if (superuser) {
        ereport(WARNING,
                (errmsg("segment_webhook: worker %d runs the ingest SQL as superuser \"%s\"", worker_number,
                        settings.role),
                 errdetail("Any trigger on segment_events then runs as a superuser too."),
                 errhint("Leave segment_webhook.role empty to ingest as the unprivileged role \"%s\".",
                         kIngestRoleName)));
    }
}

bool run_database_step(void (*step)(), const char *what) {
    MemoryContext worker_context = CurrentMemoryContext;
    volatile bool ok = true;
    PG_TRY();
    { step(); }
    PG_CATCH();
    {
        MemoryContextSwitchTo(worker_context);
        ErrorData *error = CopyErrorData();
        FlushErrorState();
        abort_worker_transaction();
        char message[512];
        snprintf(message, sizeof message, "%s failed: %s", what, error->message);
        note_write_failure(kStepFailure, error->sqlerrcode, message);
        FreeErrorData(error);
        ok = false;
        // The extension, its schema or a table may be gone: look again at once.
        state->next_extension_check_ms = 0;
    }
    PG_END_TRY();
    MemoryContextSwitchTo(worker_context);
    return ok;
}

void note_write_failure(FailureKind kind, int sqlerrcode, const char *message) {
    char *logged = state->failure_logged[kind];
    if (strncmp(logged, message, sizeof state->failure_logged[kind] - 1) != 0) {
        ereport(WARNING, (errmsg("segment_webhook: worker %d: %s", worker_number, message),
                          errdetail("Requests are answered 503 %s with Retry-After until this is fixed; this "
                                    "is logged once while it lasts.",
                                    storage_error_code(sqlerrcode))));
        snprintf(logged, sizeof state->failure_logged[kind], "%s", message);
    }
    ingest_forget_plans();
}

void note_write_success() {
    if (state->failure_logged[kBatchFailure][0] != '\0') {
        ereport(LOG, (errmsg("segment_webhook: worker %d stores events again", worker_number)));
    }
    state->failure_logged[kBatchFailure][0] = '\0';
    state->failure_logged[kStepFailure][0] = '\0';
}

// Looks the extension up (in a transaction of its own) and remembers its schema.
void check_extension() {
    begin_worker_transaction();
    const Oid schema = find_extension(nullptr);
    commit_worker_transaction();
    if (OidIsValid(schema) && schema != state->schema) {
        ereport(LOG, (errmsg("segment_webhook: extension found, ingesting")));
        state->extension_missing_logged = false;
        state->next_source_refresh_ms = 0;
        ingest_forget_plans();
    } else if (!OidIsValid(schema) && !state->extension_missing_logged) {
        ereport(LOG,
                (errmsg("segment_webhook: extension segment_webhook is not installed in database \"%s\"",
                        settings.database),
                 errhint("Run CREATE EXTENSION segment_webhook there; the worker answers 503 until then.")));
        state->extension_missing_logged = true;
    }
    if (!OidIsValid(schema) && OidIsValid(state->schema)) {
        // Known sources must not outlive the extension: a re-created one has new keys.
        run_cpp("forgetting sources", [] { state->sources.replace({}); });
    }
    state->schema = schema;
}

// Reloads segment_sources into the directory the request checks use. Columns a later version added are read
// through to_jsonb(), so that this library also reads the table of an extension not yet updated (they are
// then absent, and read as their defaults). A previous write key or secret whose grace has ended reads as
// NULL: the directory is rebuilt every second, so a grace ends within a second of its time.
void refresh_sources() {
    enum Column {
        kId,
        kEnabled,
        kName,
        kWriteKey,
        kSecret,
        kPreviousKey,
        kPreviousSecret,
        kFullSignature,
        kMaxEventsPerSecond,
        kHonorDeletions,
        kColumns
    };
    struct Row {
        int32 id;
        bool enabled;
        char *text[kColumns];  // the columns from kName on, as text (NULL for SQL NULL)
    };
    Row *rows = nullptr;
    int count = 0;
    MemoryContext worker_context = CurrentMemoryContext;
    begin_worker_transaction();
    char *query = psprintf(
        "SELECT s.id, s.enabled, s.name, s.write_key, s.shared_secret,"
        " CASE WHEN coalesce((j->>'previous_write_key_expires_at')::timestamptz > now(), true)"
        " THEN j->>'previous_write_key' END,"
        " CASE WHEN coalesce((j->>'previous_shared_secret_expires_at')::timestamptz > now(), true)"
        " THEN j->>'previous_shared_secret' END,"
        " j->>'require_full_signature', j->>'max_events_per_second', j->>'honor_deletions'"
        " FROM %s.segment_sources s CROSS JOIN LATERAL (SELECT to_jsonb(s) AS j) r",
        quoted_schema_name(state->schema));
    int rc = SPI_execute(query, true, 0);
    if (rc != SPI_OK_SELECT) {
        elog(ERROR, "could not read segment_sources: %s", SPI_result_code_string(rc));
    }
    if (SPI_gettypeid(SPI_tuptable->tupdesc, kId + 1) != INT4OID ||
        SPI_gettypeid(SPI_tuptable->tupdesc, kEnabled + 1) != BOOLOID) {
        // The table may have been altered: read nothing rather than misread it.
        ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                        errmsg("segment_sources.id must be integer and enabled boolean")));
    }
    count = static_cast<int>(SPI_processed);
    rows = static_cast<Row *>(MemoryContextAllocZero(worker_context, sizeof(Row) * (count > 0 ? count : 1)));
    for (int i = 0; i < count; ++i) {
        HeapTuple tuple = SPI_tuptable->vals[i];
        bool id_null, enabled_null;
        const Datum id = SPI_getbinval(tuple, SPI_tuptable->tupdesc, kId + 1, &id_null);
        const Datum enabled = SPI_getbinval(tuple, SPI_tuptable->tupdesc, kEnabled + 1, &enabled_null);
        rows[i].id = id_null ? 0 : DatumGetInt32(id);
        rows[i].enabled = !enabled_null && DatumGetBool(enabled) && !id_null;
        for (int column = kName; column < kColumns; ++column) {
            char *value = SPI_getvalue(tuple, SPI_tuptable->tupdesc, column + 1);
            rows[i].text[column] = value ? MemoryContextStrdup(worker_context, value) : nullptr;
        }
    }
    commit_worker_transaction();
    MemoryContextSwitchTo(worker_context);

    run_cpp("loading sources", [&] {
        std::vector<segment::SourceInfo> sources;
        sources.reserve(static_cast<size_t>(count));
        for (int i = 0; i < count; ++i) {
            const char *const *text = rows[i].text;
            if (text[kWriteKey] == nullptr || text[kWriteKey][0] == '\0') {
                continue;  // a key that was made NULL or empty matches nobody
            }
            segment::SourceInfo source;
            source.id = rows[i].id;
            source.enabled = rows[i].enabled;
            source.name = text[kName] ? text[kName] : "";
            source.write_key = text[kWriteKey];
            if (text[kSecret] != nullptr) {
                source.shared_secret = std::string(text[kSecret]);
            }
            if (text[kPreviousKey] != nullptr) {
                source.previous_write_key = text[kPreviousKey];
            }
            if (text[kPreviousSecret] != nullptr) {
                source.previous_shared_secret = std::string(text[kPreviousSecret]);
            }
            source.require_full_signature = text[kFullSignature] && strcmp(text[kFullSignature], "true") == 0;
            source.honor_deletions = text[kHonorDeletions] && strcmp(text[kHonorDeletions], "true") == 0;
            if (text[kMaxEventsPerSecond] != nullptr) {
                source.max_events_per_second =
                    static_cast<int32_t>(strtol(text[kMaxEventsPerSecond], nullptr, 10));
            }
            sources.push_back(std::move(source));
        }
        state->source_names.clear();
        for (const segment::SourceInfo &source : sources) {
            state->source_names[source.id] = source.name;
        }
        state->sources.replace(std::move(sources));
    });
    for (int i = 0; i < count; ++i) {
        for (int column = kName; column < kColumns; ++column) {
            if (rows[i].text[column] != nullptr) {
                pfree(rows[i].text[column]);
            }
        }
    }
    pfree(rows);
}

// Whether the database accepts a write transaction now: a transaction that takes a transaction id and commits
// (fails on a standby, when WAL cannot be written, or when the database refuses connections' writes).
void probe_commit() {
    begin_worker_transaction();
    (void)GetTopTransactionId();
    commit_worker_transaction();
}

}  // namespace segment_pg
