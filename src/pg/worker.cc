// The HTTP ingest background worker: socket → request → source and signature check → pending batch → one
// transaction → COMMIT → answers. One WaitEventSet holds the latch, postmaster death and the HTTP server's
// epoll descriptor; the wait timeout is the nearest deadline (batch linger, a connection timeout, the next
// refresh of segment_sources), never a fixed polling tick.
//
// C++/Postgres boundary: the C++ objects (server, source directory, request queue) live on the heap behind
// file-level pointers, so no frame that can longjmp holds a C++ object with a destructor; every call into
// them that may throw goes through run_cpp(), which turns an exception into ereport(ERROR) outside any catch
// block.
#include "core/http_server.h"
#include "core/webhook.h"
#include "pg/cpp_guard.h"
#include "pg/ingest.h"
#include "pg/jsonb_builder.h"
#include "pg/settings.h"
#include "pg/shared.h"
#include "pg/worker.h"

#include <sys/resource.h>
#include <sys/time.h>

#include <cstring>
#include <string>
#include <vector>

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
#include "utils/varlena.h"
}

namespace segment_pg {
namespace {

constexpr int64 kSourceRefreshMs = 1000;
constexpr int64 kExtensionCheckMs = 1000;
constexpr int64 kShutdownGraceMs = 5000;

// A request waiting for the next COMMIT.
struct PendingRequest {
    uint64_t connection;
    const segment::HttpRequest *request;  // owned by the server until answered
    int32 source_id;
    TimestampTz received_at;
    bool invalid_json;
    std::string json_error;
    bool body_rewritten;
    std::string rewritten_body;  // decompressed, or newline-delimited JSON as an array
    bool has_implied_type;
    segment::MessageType implied_type;
    std::string client_ip;  // fills context.ip (tracking API endpoints); empty for webhooks
    std::vector<std::pair<std::string, std::string>> headers;  // CORS, on the final answer too
    int64 accepted, duplicates, rejected;
};

struct WorkerState {
    segment::HttpServer *server = nullptr;
    segment::SourceDirectory sources;
    std::vector<std::string> cors_origins;  // segment_webhook.cors_origins, split
    std::vector<segment::ReadyRequest> ready;
    std::vector<PendingRequest> pending;
    int pending_messages = 0;
    int64 first_pending_ms = -1;
    Oid schema = InvalidOid;  // the extension's schema; InvalidOid while it is missing
    bool extension_missing_logged = false;
    bool health_ok = false;
    int64 next_health_probe_ms = 0;
    int64 next_source_refresh_ms = 0;
    uint64 sources_version_seen = 0;
    int64 next_extension_check_ms = 0;
    int64 shutdown_deadline_ms = -1;
};

WorkerState *state = nullptr;
IngestBatch batch;
int worker_number = 0;
volatile sig_atomic_t shutdown_requested = false;

int64 now_ms() {
    struct timeval now;
    gettimeofday(&now, nullptr);
    return int64(now.tv_sec) * 1000 + now.tv_usec / 1000;
}

void handle_sigterm(SIGNAL_ARGS) {
    int saved_errno = errno;
    shutdown_requested = true;
    SetLatch(MyLatch);
    errno = saved_errno;
}

segment::HttpParserLimits parser_limits() {
    segment::HttpParserLimits limits;
    limits.max_header_bytes = static_cast<size_t>(settings.max_header_size);
    limits.max_body_bytes = static_cast<uint64_t>(settings.max_request_size);
    return limits;
}

void start_server() {
    char *raw = pstrdup(settings.listen_addresses);
    List *names = nullptr;
    if (!SplitGUCList(raw, ',', &names)) {
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("segment_webhook.listen_addresses is not a valid list: \"%s\"",
                               settings.listen_addresses)));
    }
    const int count = list_length(names);
    const char **addresses = static_cast<const char **>(palloc(sizeof(char *) * (count > 0 ? count : 1)));
    int i = 0;
    ListCell *cell;
    foreach (cell, names) {
        addresses[i++] = static_cast<const char *>(lfirst(cell));
    }
    run_cpp("starting the HTTP server", [&] {
        segment::HttpServerOptions options;
        for (int n = 0; n < count; ++n) {
            options.listen_addresses.emplace_back(addresses[n]);
        }
        options.port = settings.port;
        options.reuse_port = settings.workers > 1;
        options.max_connections = static_cast<size_t>(settings.max_connections);
        options.parser_limits = parser_limits();
        options.read_timeout_ms = settings.read_timeout_ms;
        options.idle_timeout_ms = settings.idle_timeout_ms;
        state->server = new segment::HttpServer(options);
    });
    const int bound = run_cpp("listing addresses",
                              [] { return static_cast<int>(state->server->bound_addresses().size()); });
    for (int n = 0; n < bound; ++n) {
        char address[128];
        run_cpp("listing addresses", [&] {
            snprintf(address, sizeof address, "%s", state->server->bound_addresses()[n].c_str());
        });
        ereport(LOG, (errmsg("segment_webhook: worker %d listening on %s", worker_number, address)));
    }
}

void apply_reloaded_settings() {
    char *raw = pstrdup(settings.cors_origins);
    List *origins = nullptr;
    if (!SplitGUCList(raw, ',', &origins)) {
        ereport(WARNING, (errmsg("segment_webhook.cors_origins is not a valid list; allowing no origin")));
        origins = nullptr;
    }
    const int origin_count = list_length(origins);
    const char **origin_names = static_cast<const char **>(palloc(sizeof(char *) * (origin_count + 1)));
    for (int n = 0; n < origin_count; ++n) {
        origin_names[n] = static_cast<const char *>(list_nth(origins, n));
    }
    run_cpp("applying settings",
            [&] { state->cors_origins.assign(origin_names, origin_names + origin_count); });
    run_cpp("applying settings", [] {
        state->server->set_limits(static_cast<size_t>(settings.max_connections), parser_limits(),
                                  settings.read_timeout_ms, settings.idle_timeout_ms);
    });
    char value[32];
    snprintf(value, sizeof value, "%d", settings.lock_timeout_ms);
    SetConfigOption("lock_timeout", value, PGC_SUSET, PGC_S_OVERRIDE);
}

// Looks the extension up (in a transaction of its own) and remembers its schema.
void check_extension() {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    SPI_connect();
    PushActiveSnapshot(GetTransactionSnapshot());
    Oid schema = InvalidOid;
    int rc = SPI_execute("SELECT extnamespace FROM pg_catalog.pg_extension WHERE extname = 'segment_webhook'",
                         true, 1);
    if (rc == SPI_OK_SELECT && SPI_processed == 1) {
        bool is_null;
        schema = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &is_null));
    }
    PopActiveSnapshot();
    SPI_finish();
    CommitTransactionCommand();
    if (OidIsValid(schema) && !OidIsValid(state->schema)) {
        ereport(LOG, (errmsg("segment_webhook: extension found, ingesting")));
        state->extension_missing_logged = false;
        state->next_source_refresh_ms = 0;
    } else if (!OidIsValid(schema) && !state->extension_missing_logged) {
        ereport(LOG,
                (errmsg("segment_webhook: extension segment_webhook is not installed in database \"%s\"",
                        settings.database),
                 errhint("Run CREATE EXTENSION segment_webhook there; the worker answers 503 until then.")));
        state->extension_missing_logged = true;
    }
    state->schema = schema;
}

// Reloads segment_sources into the directory the request checks use.
void refresh_sources() {
    struct Row {
        int32 id;
        bool enabled;
        char *name, *write_key, *secret;
    };
    Row *rows = nullptr;
    int count = 0;
    MemoryContext worker_context = CurrentMemoryContext;
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    SPI_connect();
    PushActiveSnapshot(GetTransactionSnapshot());
    char *query = psprintf("SELECT id, enabled, name, write_key, shared_secret FROM %s.segment_sources",
                           quote_identifier(get_namespace_name(state->schema)));
    int rc = SPI_execute(query, true, 0);
    if (rc != SPI_OK_SELECT) {
        elog(ERROR, "could not read segment_sources: %s", SPI_result_code_string(rc));
    }
    count = static_cast<int>(SPI_processed);
    rows = static_cast<Row *>(MemoryContextAllocZero(worker_context, sizeof(Row) * (count > 0 ? count : 1)));
    for (int i = 0; i < count; ++i) {
        HeapTuple tuple = SPI_tuptable->vals[i];
        bool is_null;
        rows[i].id = DatumGetInt32(SPI_getbinval(tuple, SPI_tuptable->tupdesc, 1, &is_null));
        rows[i].enabled = DatumGetBool(SPI_getbinval(tuple, SPI_tuptable->tupdesc, 2, &is_null));
        char *name = SPI_getvalue(tuple, SPI_tuptable->tupdesc, 3);
        char *key = SPI_getvalue(tuple, SPI_tuptable->tupdesc, 4);
        char *secret = SPI_getvalue(tuple, SPI_tuptable->tupdesc, 5);
        rows[i].name = MemoryContextStrdup(worker_context, name ? name : "");
        rows[i].write_key = MemoryContextStrdup(worker_context, key ? key : "");
        rows[i].secret = secret ? MemoryContextStrdup(worker_context, secret) : nullptr;
    }
    PopActiveSnapshot();
    SPI_finish();
    CommitTransactionCommand();
    MemoryContextSwitchTo(worker_context);

    run_cpp("loading sources", [&] {
        std::vector<segment::SourceInfo> sources;
        sources.reserve(static_cast<size_t>(count));
        for (int i = 0; i < count; ++i) {
            segment::SourceInfo source;
            source.id = rows[i].id;
            source.enabled = rows[i].enabled;
            source.name = rows[i].name;
            source.write_key = rows[i].write_key;
            if (rows[i].secret != nullptr) {
                source.shared_secret = std::string(rows[i].secret);
            }
            sources.push_back(std::move(source));
        }
        state->sources.replace(std::move(sources));
    });
    for (int i = 0; i < count; ++i) {
        pfree(rows[i].name);
        pfree(rows[i].write_key);
        if (rows[i].secret) {
            pfree(rows[i].secret);
        }
    }
    pfree(rows);
}

// Runs a database step (extension check, source refresh); a failure is logged and retried later, never fatal.
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
        AbortCurrentTransaction();
        ereport(WARNING, (errmsg("segment_webhook: %s failed: %s", what, error->message)));
        FreeErrorData(error);
        ok = false;
    }
    PG_END_TRY();
    MemoryContextSwitchTo(worker_context);
    return ok;
}

void respond_error(uint64_t connection, int status, const char *code, const char *message, bool retry,
                   const std::vector<std::pair<std::string, std::string>> *headers = nullptr) {
    add_to_counter(kRequests);
    if (status < 500) {
        add_to_counter(kRequestErrors);
    }
    run_cpp("answering a request", [&] {
        segment::HttpResponse response = segment::json_error_response(status, code, message, false);
        if (retry) {
            response.retry_after_seconds = static_cast<uint32_t>(settings.retry_after_s);
        }
        if (headers != nullptr) {
            response.extra_headers = *headers;
        }
        state->server->respond(connection, response, now_ms());
    });
}

void answer_pending(bool committed, const char *failure) {
    const size_t count = state->pending.size();
    if (committed) {
        for (int i = 0; i < batch.event_count; ++i) {
            PendingRequest &request = state->pending[static_cast<size_t>(batch.events[i].request)];
            switch (batch.events[i].outcome) {
                case EventOutcome::Stored:
                    ++request.accepted;
                    break;
                case EventOutcome::Duplicate:
                    ++request.duplicates;
                    break;
                default:
                    break;
            }
        }
        for (int i = 0; i < batch.rejection_count; ++i) {
            ++state->pending[static_cast<size_t>(batch.rejections[i].request)].rejected;
        }
    }
    for (size_t i = 0; i < count; ++i) {
        const PendingRequest &request = state->pending[i];
        if (!committed) {
            respond_error(request.connection, 503, "database_unavailable", failure, true, &request.headers);
        } else if (request.invalid_json) {
            respond_error(request.connection, 400, "invalid_json", request.json_error.c_str(), false,
                          &request.headers);
        } else {
            char body[160];
            snprintf(body, sizeof body,
                     "{\"success\":true,\"accepted\":" INT64_FORMAT ",\"duplicates\":" INT64_FORMAT
                     ",\"rejected\":" INT64_FORMAT "}",
                     request.accepted, request.duplicates, request.rejected);
            run_cpp("answering a request", [&] {
                segment::HttpResponse response;
                response.body = body;
                response.extra_headers = request.headers;
                state->server->respond(request.connection, response, now_ms());
                add_to_counter(kRequests);
            });
        }
    }
}

// Writes every pending request in one transaction, then answers them all: 200 (or 400 for a body that is not
// JSON, stored as a dead letter) after COMMIT, 503 with Retry-After if the database could not commit.
void flush_pending() {
    if (state->pending.empty()) {
        return;
    }
    MemoryContext worker_context = CurrentMemoryContext;
    volatile bool committed = false;
    char failure[512] = "";
    const int64 stored_before = batch.stored, duplicates_before = batch.duplicates,
                rejected_before = batch.rejected;
    pgstat_report_activity(STATE_RUNNING, "segment_webhook: storing a batch");
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    PG_TRY();
    {
        SPI_connect();
        PushActiveSnapshot(GetTransactionSnapshot());
        batch.schema = state->schema;
        for (size_t i = 0; i < state->pending.size(); ++i) {
            PendingRequest &request = state->pending[i];
            const std::string &body =
                request.body_rewritten ? request.rewritten_body : request.request->body();
            if (!request.invalid_json) {
                char *error_message = nullptr;
                MemoryContext caller = MemoryContextSwitchTo(batch.context);
                Jsonb *jsonb = json_to_jsonb(body.data(), body.size(), &error_message);
                MemoryContextSwitchTo(caller);
                if (jsonb != nullptr) {
                    ingest_queue_body(&batch, request.source_id, static_cast<int32>(i), request.received_at,
                                      jsonb, request.has_implied_type ? &request.implied_type : nullptr,
                                      request.client_ip.empty() ? nullptr : request.client_ip.c_str());
                    continue;
                }
                request.invalid_json = true;
                request.json_error = error_message;
            }
            ingest_queue_rejection(&batch, request.source_id, static_cast<int32>(i), request.received_at,
                                   "invalid_json", request.json_error.c_str(), body.data(), body.size());
        }
        ingest_batch_flush(&batch);
        PopActiveSnapshot();
        SPI_finish();
        CommitTransactionCommand();
        committed = true;
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(worker_context);
        ErrorData *error = CopyErrorData();
        FlushErrorState();
        AbortCurrentTransaction();
        snprintf(failure, sizeof failure, "the database could not store the batch: %s", error->message);
        ereport(WARNING,
                (errmsg("segment_webhook: a batch of %zu requests was not stored: %s", state->pending.size(),
                        error->message),
                 errdetail("Each request was answered 503 with Retry-After; the sender retries it.")));
        FreeErrorData(error);
        // A dropped extension or a changed schema shows up here first.
        state->next_extension_check_ms = 0;
    }
    PG_END_TRY();
    MemoryContextSwitchTo(worker_context);
    if (!committed) {
        state->next_health_probe_ms = 0;  // /health probes again instead of trusting an older success
    }
    answer_pending(committed, failure);
    ingest_batch_reset(&batch);
    run_cpp("clearing the batch", [] {
        state->pending.clear();
        state->pending_messages = 0;
        state->first_pending_ms = -1;
    });
    if (committed) {
        add_to_counter(kBatchesCommitted);
        add_to_counter(kEventsStored, static_cast<uint64>(batch.stored - stored_before));
        add_to_counter(kDuplicates, static_cast<uint64>(batch.duplicates - duplicates_before));
        add_to_counter(kRejected, static_cast<uint64>(batch.rejected - rejected_before));
        set_last_commit(GetCurrentTimestamp());
        pgstat_report_stat(false);
    } else {
        add_to_counter(kBatchesFailed);
        batch.stored = stored_before;
        batch.duplicates = duplicates_before;
        batch.rejected = rejected_before;
    }
    pgstat_report_activity(STATE_IDLE, nullptr);
}

// Whether the database accepts a write transaction now: a transaction that takes a transaction id and commits
// (fails on a standby, when WAL cannot be written, or when the database refuses connections' writes).
void probe_commit() {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    (void)GetTopTransactionId();
    CommitTransactionCommand();
}

// /health: 200 when the extension exists and a write transaction commits (probed at most once a second).
void answer_health(uint64_t connection) {
    const int64 now = now_ms();
    if (OidIsValid(state->schema) && now >= state->next_health_probe_ms) {
        state->health_ok = run_database_step(probe_commit, "probing the database for /health");
        state->next_health_probe_ms = now + 1000;
    }
    if (!OidIsValid(state->schema)) {
        respond_error(connection, 503, "extension_missing",
                      "the segment_webhook extension is not installed in the worker's database", true);
    } else if (!state->health_ok || shutdown_requested) {
        respond_error(connection, 503, "database_unavailable",
                      shutdown_requested ? "the server is shutting down" : "the database cannot commit",
                      true);
    } else {
        run_cpp("answering /health", [&] {
            segment::HttpResponse response;
            response.body = "{\"status\":\"ok\"}";
            state->server->respond(connection, response, now_ms());
            add_to_counter(kRequests);
        });
    }
}

// Decides what to do with each request the server handed out: answer at once, or add it to the batch.
void take_ready_requests() {
    const size_t count = run_cpp("reading requests", [] { return state->ready.size(); });
    for (size_t i = 0; i < count; ++i) {
        const TimestampTz received_at = GetCurrentTimestamp();
        const bool health = run_cpp("routing a request", [&] {
            const segment::ReadyRequest &ready = state->ready[i];
            segment::WebhookContext context;
            context.sources = &state->sources;
            context.ingest_available = OidIsValid(state->schema) && !shutdown_requested;
            if (!OidIsValid(state->schema)) {
                context.unavailable_code = "extension_missing";
                context.unavailable_message =
                    "the segment_webhook extension is not installed in database \"" +
                    std::string(settings.database) + "\"; run CREATE EXTENSION segment_webhook";
            } else {
                context.unavailable_code = "shutting_down";
                context.unavailable_message = "the server is shutting down; retry";
            }
            context.retry_after_seconds = static_cast<uint32_t>(settings.retry_after_s);
            context.max_body_bytes = static_cast<size_t>(settings.max_request_size);
            context.cors_origins = state->cors_origins;
            context.trust_proxy = settings.trust_proxy;
            segment::WebhookDecision decision = segment::decide(*ready.request, ready.peer, context);
            if (decision.action == segment::WebhookAction::Health) {
                return true;
            }
            if (decision.action == segment::WebhookAction::Respond) {
                state->server->respond(ready.connection, decision.response, now_ms());
                add_to_counter(kRequests);
                if (decision.response.status >= 400 && decision.response.status < 500) {
                    add_to_counter(kRequestErrors);
                }
                return false;
            }
            add_to_counter(kBytesReceived, ready.request->body().size());
            PendingRequest pending;
            pending.connection = ready.connection;
            pending.request = ready.request;
            pending.source_id = decision.source_id;
            pending.received_at = received_at;
            pending.invalid_json = !decision.json.valid;
            pending.json_error = decision.json.error;
            pending.body_rewritten = decision.body_rewritten;
            pending.rewritten_body = std::move(decision.rewritten_body);
            pending.has_implied_type = decision.implied_type.has_value();
            pending.implied_type = decision.implied_type.value_or(segment::MessageType::Track);
            pending.client_ip = std::move(decision.client_ip);
            pending.headers = std::move(decision.headers);
            pending.accepted = pending.duplicates = pending.rejected = 0;
            state->pending.push_back(std::move(pending));
            state->pending_messages +=
                decision.json.valid ? static_cast<int>(decision.json.message_count) : 1;
            if (state->first_pending_ms < 0) {
                state->first_pending_ms = ready.received_ms;
            }
            return false;
        });
        if (health) {
            answer_health(state->ready[i].connection);
        }
    }
    run_cpp("reading requests", [] { state->ready.clear(); });
}

// Each connection is a descriptor: raise the soft limit to the hard one (often 1,024 soft under systemd or
// runuser, far fewer than max_connections), and say so when max_connections cannot fit.
void raise_open_files_limit() {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
        return;
    }
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
        getrlimit(RLIMIT_NOFILE, &limit);
    }
    if (limit.rlim_cur != RLIM_INFINITY &&
        limit.rlim_cur < static_cast<rlim_t>(settings.max_connections) + 256) {
        ereport(
            WARNING,
            (errmsg(
                 "segment_webhook: the open files limit (%lu) is below segment_webhook.max_connections (%d) "
                 "plus the descriptors Postgres needs",
                 static_cast<unsigned long>(limit.rlim_cur), settings.max_connections),
             errhint("Raise LimitNOFILE (systemd) or ulimit -n for the postmaster.")));
    }
}

long wait_timeout(int64 now) {
    int64 deadline = -1;
    auto consider = [&deadline](int64 when) {
        if (when >= 0 && (deadline < 0 || when < deadline)) {
            deadline = when;
        }
    };
    if (run_cpp("computing deadlines", [] { return state->server->has_ready_requests(); })) {
        return 0;  // pipelined requests are waiting in a buffer; no socket event will announce them
    }
    consider(run_cpp("computing deadlines", [] { return state->server->next_deadline_ms(); }));
    if (!state->pending.empty()) {
        consider(state->first_pending_ms + settings.batch_delay_ms);
    }
    consider(OidIsValid(state->schema) ? state->next_source_refresh_ms : state->next_extension_check_ms);
    if (state->shutdown_deadline_ms >= 0) {
        consider(now + 100);
    }
    if (deadline < 0) {
        return -1;
    }
    return deadline <= now ? 0 : static_cast<long>(deadline - now);
}

}  // namespace

}  // namespace segment_pg

extern "C" PGDLLEXPORT void segment_webhook_worker_main(Datum argument) {
    using namespace segment_pg;
    worker_number = DatumGetInt32(argument);
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, handle_sigterm);
    BackgroundWorkerUnblockSignals();

    const char *role = settings.role[0] != '\0' ? settings.role : nullptr;
    BackgroundWorkerInitializeConnection(settings.database, role, 0);
    if (role == nullptr && worker_number == 0) {
        ereport(LOG,
                (errmsg("segment_webhook: workers connect as the bootstrap superuser"),
                 errhint("Set segment_webhook.role to a dedicated role with INSERT on segment_events and "
                         "segment_rejected, SELECT (source_id, message_id) on segment_events and SELECT on "
                         "segment_sources (see README.md).")));
    }
    pgstat_report_appname("segment_webhook");
    register_worker_process(worker_number);
    raise_open_files_limit();

    MemoryContext worker_context =
        AllocSetContextCreate(TopMemoryContext, "segment_webhook worker", ALLOCSET_DEFAULT_SIZES);
    MemoryContextSwitchTo(worker_context);
    state = run_cpp("starting the worker", [] { return new WorkerState(); });
    ingest_batch_init(&batch, InvalidOid, TopMemoryContext);
    start_server();
    apply_reloaded_settings();

    WaitEventSet *events = CreateWaitEventSet(TopMemoryContext, 3);
    AddWaitEventToSet(events, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, nullptr);
    AddWaitEventToSet(events, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, nullptr, nullptr);
    AddWaitEventToSet(events, WL_SOCKET_READABLE, state->server->epoll_fd(), nullptr, nullptr);

    for (;;) {
        int64 now = now_ms();
        WaitEvent fired[3];
        const long timeout = wait_timeout(now);
        const int fired_count = WaitEventSetWait(events, timeout, fired, 3, PG_WAIT_EXTENSION);
        for (int i = 0; i < fired_count; ++i) {
            if (fired[i].events & WL_LATCH_SET) {
                ResetLatch(MyLatch);
            }
        }
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
            apply_reloaded_settings();
            state->next_source_refresh_ms = 0;
        }
        now = now_ms();
        if (shutdown_requested && state->shutdown_deadline_ms < 0) {
            ereport(LOG, (errmsg("segment_webhook: worker %d shutting down: finishing requests in flight",
                                 worker_number)));
            run_cpp("stopping", [] { state->server->stop_accepting(); });
            state->shutdown_deadline_ms = now + kShutdownGraceMs;
        }

        // Look the extension up every second while it is missing, and at once after a failed batch (0).
        if (now >= state->next_extension_check_ms &&
            (!OidIsValid(state->schema) || state->next_extension_check_ms == 0)) {
            run_database_step(check_extension, "looking up the extension");
            state->next_extension_check_ms = now + kExtensionCheckMs;
        }
        const uint64 version = sources_version();
        if (OidIsValid(state->schema) &&
            (now >= state->next_source_refresh_ms || version != state->sources_version_seen)) {
            state->sources_version_seen = version;
            run_database_step(refresh_sources, "reading segment_sources");
            state->next_source_refresh_ms = now + kSourceRefreshMs;
        }

        // Read everything that is ready; stop as soon as a poll finds nothing more (the sockets are drained),
        // the batch is full, or its first message has waited batch_delay. Requests that arrive while a batch
        // commits form the next batch: that is the group commit.
        bool drained = false;
        for (;;) {
            const size_t handled =
                run_cpp("serving HTTP", [now] { return state->server->poll(now, state->ready); });
            take_ready_requests();
            now = now_ms();
            if (handled == 0) {
                drained = true;
                break;
            }
            if (state->pending.empty() || state->pending_messages >= settings.batch_size ||
                now >= state->first_pending_ms + settings.batch_delay_ms) {
                break;
            }
        }
        set_open_connections(
            run_cpp("counting connections", [] { return state->server->connection_count(); }));
        if (!state->pending.empty() &&
            (drained || state->pending_messages >= settings.batch_size ||
             now >= state->first_pending_ms + settings.batch_delay_ms || shutdown_requested)) {
            flush_pending();
        }

        if (state->shutdown_deadline_ms >= 0) {
            const bool drained = run_cpp("stopping", [] {
                return state->server->requests_out() == 0 && !state->server->has_unsent_output();
            });
            if ((drained && state->pending.empty()) || now >= state->shutdown_deadline_ms) {
                // Exit code 1 asks the postmaster to start the worker again (after bgw_restart_time): a
                // worker stopped with pg_terminate_backend() comes back; at server shutdown nothing is
                // restarted anyway.
                ereport(LOG,
                        (errmsg("segment_webhook: worker %d stopped after answering every request in flight",
                                worker_number)));
                proc_exit(1);
            }
        }
    }
}
