// The HTTP ingest background worker: socket → request → source and signature check → pending batch → one
// transaction → COMMIT → answers. One WaitEventSet holds the latch, postmaster death and the HTTP server's
// epoll descriptor; the wait timeout is the nearest deadline (batch linger, a connection timeout, the next
// refresh of segment_sources), never a fixed polling tick.
//
// Errors: the loop has its own error boundary (like Postgres' own backends), so an error that escapes a step
// (a cancel request, an out-of-memory) is logged and the loop goes on: it never becomes FATAL, which would
// reset every open connection. See worker_state.h for the C++/Postgres boundary.
#include "core/http_server.h"
#include "core/webhook.h"
#include "pg/cpp_guard.h"
#include "pg/ingest.h"
#include "pg/jsonb_builder.h"
#include "pg/metrics.h"
#include "pg/settings.h"
#include "pg/shared.h"
#include "pg/worker.h"
#include "pg/worker_state.h"

#include <malloc.h>
#include <setjmp.h>
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

WorkerState *state = nullptr;
IngestBatch batch;
int worker_number = 0;
volatile sig_atomic_t shutdown_requested = false;

int64 now_ms() {
    struct timeval now;
    gettimeofday(&now, nullptr);
    return int64(now.tv_sec) * 1000 + now.tv_usec / 1000;
}

namespace {

constexpr int64 kSourceRefreshMs = 1000;
constexpr int64 kExtensionCheckMs = 1000;
constexpr int64 kShutdownGraceMs = 5000;

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
    const bool https = tls_requested();
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
        options.max_buffered_bytes = static_cast<size_t>(settings.max_buffered_bytes);
        options.busy_retry_after_seconds = static_cast<uint32_t>(settings.retry_after_s);
        options.head_check = check_head;
        options.https = https;  // the certificate comes with apply_reloaded_settings()
        state->server = new segment::HttpServer(options);
    });
    const int bound = run_cpp("listing addresses",
                              [] { return static_cast<int>(state->server->bound_addresses().size()); });
    for (int n = 0; n < bound; ++n) {
        char address[128];
        run_cpp("listing addresses", [&] {
            snprintf(address, sizeof address, "%s", state->server->bound_addresses()[n].c_str());
        });
        ereport(LOG, (errmsg("segment_webhook: worker %d listening on %s%s", worker_number, address,
                             https ? " (HTTPS only)" : "")));
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
                                  settings.read_timeout_ms, settings.idle_timeout_ms,
                                  static_cast<size_t>(settings.max_buffered_bytes),
                                  static_cast<uint32_t>(settings.retry_after_s));
    });
    load_tls_certificate();
    char value[32];
    snprintf(value, sizeof value, "%d", settings.lock_timeout_ms);
    SetConfigOption("lock_timeout", value, PGC_SUSET, PGC_S_OVERRIDE);
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

// A batch's memory (its executor state, a slot and a formed tuple per row) comes in blocks of megabytes,
// freed when the batch ends. glibc serves blocks that large with mmap() and gives them back with munmap(), so
// every batch would touch fresh pages again: a page fault per 4 kB, the costliest part of writing a large
// batch on a virtual machine. Keep such blocks in the heap instead, and the heap's top (up to 64 MB) mapped
// between batches.
void keep_batch_memory() {
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
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
    if (admin_has_ready_requests()) {
        return 0;
    }
    consider(run_cpp("computing deadlines", [] { return state->server->next_deadline_ms(); }));
    consider(admin_next_deadline_ms());
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

namespace segment_pg {
namespace {

// One turn of the loop: wait for the nearest deadline, then do everything that is due.
void serve_once(WaitEventSet *events) {
    int64 now = now_ms();
    WaitEvent fired[4];
    const long timeout = wait_timeout(now);
    const int fired_count = WaitEventSetWait(events, timeout, fired, 4, PG_WAIT_EXTENSION);
    for (int i = 0; i < fired_count; ++i) {
        if (fired[i].events & WL_LATCH_SET) {
            ResetLatch(MyLatch);
        }
    }
    // pg_cancel_backend() cancels the batch being written, if any (its requests are answered 503 and
    // retried); between batches there is nothing to cancel, and it must not end the worker.
    QueryCancelPending = false;
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
        stop_admin_listener();
        state->shutdown_deadline_ms = now + kShutdownGraceMs;
    }

    // Look the extension up every second while it is missing, and at once after a failure (0).
    if (now >= state->next_extension_check_ms &&
        (!OidIsValid(state->schema) || state->next_extension_check_ms == 0)) {
        state->next_extension_check_ms = now + kExtensionCheckMs;
        run_database_step(check_extension, "looking up the extension");
        if (state->next_extension_check_ms == 0) {
            state->next_extension_check_ms = now + kExtensionCheckMs;
        }
    }
    const uint64 version = sources_version();
    if (OidIsValid(state->schema) &&
        (now >= state->next_source_refresh_ms || version != state->sources_version_seen)) {
        state->sources_version_seen = version;
        state->next_source_refresh_ms = now + kSourceRefreshMs;
        run_database_step(refresh_sources, "reading segment_sources");
    }

    // Read everything that is ready; stop as soon as a poll finds nothing more (the sockets are drained), the
    // batch is full, or its first message has waited batch_delay. Requests that arrive while a batch commits
    // form the next batch: that is the group commit.
    run_cpp("preparing the request checks", [] { refresh_webhook_context(); });
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
    set_open_connections(run_cpp("counting connections", [] { return state->server->connection_count(); }));
    // Requests the server refused itself as too many bytes (503 server_busy), before their path was known.
    const uint64 refused_busy =
        run_cpp("counting refusals", [] { return state->server->counters().refused_busy; });
    for (; state->refused_busy_counted < refused_busy; ++state->refused_busy_counted) {
        metrics_count_request(segment::RequestEndpoint::Other, 503);
    }
    if (!state->pending.empty() &&
        (drained || state->pending_messages >= settings.batch_size ||
         now >= state->first_pending_ms + settings.batch_delay_ms || shutdown_requested)) {
        flush_pending();
    }
    // Between batches: the admin listener's requests wait for the batch, never the other way round.
    serve_admin_requests();

    if (state->shutdown_deadline_ms >= 0) {
        const bool finished = run_cpp("stopping", [] {
            return state->server->requests_out() == 0 && !state->server->has_unsent_output();
        });
        if ((finished && state->pending.empty()) || now >= state->shutdown_deadline_ms) {
            // Exit code 1 asks the postmaster to start the worker again (after bgw_restart_time): a worker
            // stopped with pg_terminate_backend() comes back; at server shutdown nothing is restarted anyway.
            ereport(LOG, (errmsg("segment_webhook: worker %d stopped after answering every request in flight",
                                 worker_number)));
            proc_exit(1);
        }
    }
}

// After an error escaped serve_once(): what Postgres' own backends do at their top level, then carry on.
void recover_from_error(MemoryContext worker_context) {
    // The error context callbacks registered by the frames the longjmp left are gone with them.
    error_context_stack = nullptr;
    HOLD_INTERRUPTS();
    EmitErrorReport();
    abort_worker_transaction();
    MemoryContextSwitchTo(worker_context);
    FlushErrorState();
    QueryCancelPending = false;
    RESUME_INTERRUPTS();
    // Requests handed out and not yet routed are answered 503 (the one that failed among them); requests
    // already queued go into the next batch. Nothing was acknowledged.
    abandon_ready_requests();
    state->next_extension_check_ms = 0;
}

}  // namespace
}  // namespace segment_pg

extern "C" PGDLLEXPORT void segment_webhook_worker_main(Datum argument) {
    using namespace segment_pg;
    worker_number = DatumGetInt32(argument);
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, handle_sigterm);
    BackgroundWorkerUnblockSignals();
    if (IsBinaryUpgrade) {
        proc_exit(0);  // pg_upgrade's server: nothing may write, and the worker is not restarted
    }

    const char *role = settings.role[0] != '\0' ? settings.role : nullptr;
    BackgroundWorkerInitializeConnection(settings.database, role, 0);
    pgstat_report_appname("segment_webhook");
    register_worker_process(worker_number);
    metrics_worker_started(worker_number);
    raise_open_files_limit();
    keep_batch_memory();

    MemoryContext worker_context =
        AllocSetContextCreate(TopMemoryContext, "segment_webhook worker", ALLOCSET_DEFAULT_SIZES);
    MemoryContextSwitchTo(worker_context);
    state = run_cpp("starting the worker", [] { return new WorkerState(); });
    report_ingest_role();
    ingest_batch_init(&batch, InvalidOid, TopMemoryContext);
    start_server();
    const int admin_fd = start_admin_listener();
    apply_reloaded_settings();

    WaitEventSet *events = CreateWaitEventSet(TopMemoryContext, 4);
    AddWaitEventToSet(events, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, nullptr);
    AddWaitEventToSet(events, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, nullptr, nullptr);
    AddWaitEventToSet(events, WL_SOCKET_READABLE, state->server->epoll_fd(), nullptr, nullptr);
    if (admin_fd >= 0) {
        AddWaitEventToSet(events, WL_SOCKET_READABLE, admin_fd, nullptr, nullptr);
    }

    // The loop's error boundary. This frame holds no C++ object; everything it needs survives in `state`.
    sigjmp_buf error_boundary;
    if (sigsetjmp(error_boundary, 1) != 0) {
        recover_from_error(worker_context);
    }
    PG_exception_stack = &error_boundary;
    for (;;) {
        serve_once(events);
    }
}
