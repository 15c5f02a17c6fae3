// The HTTP worker's state, shared by its files: worker.cc (the loop, signals, settings), worker_db.cc (every
// transaction the worker runs, and its catalog look-ups) and worker_batch.cc (requests → batch → COMMIT →
// answers).
//
// C++/Postgres boundary: the C++ objects (server, source directory, request queues) live on the heap behind
// `state`, so no frame that can longjmp holds a C++ object with a destructor; every call into them that may
// throw goes through run_cpp() (pg/cpp_guard.h).
#pragma once

#include "core/http_server.h"
#include "core/webhook.h"
#include "pg/ingest.h"

#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "pg/postgres_headers.h"

namespace segment_pg {

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
    segment::SignatureCoverage
        signature;  // what a verified X-Signature covered: segment_events.signature_verified
    std::vector<std::pair<std::string, std::string>> headers;  // CORS, on the final answer too
    int64 accepted, duplicates, rejected;
    bool rate_charged;  // its events were charged to its source's rate limit (given back if not stored)
    uint64 charged_events;
};

struct WorkerState {
    segment::HttpServer *server = nullptr;
    segment::SourceDirectory sources;
    std::unordered_map<int32, std::string> source_names;  // by id, for the metrics' labels
    std::vector<std::string> cors_origins;                // segment_webhook.cors_origins, split
    segment::WebhookContext context;                      // see refresh_webhook_context()
    std::vector<segment::ReadyRequest> ready;
    size_t ready_taken = 0;  // ready[0, ready_taken) have been routed
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
    // TLS (worker_tls.cc): what was last logged about the certificate, so that each news is logged once.
    bool tls_loaded = false;              // a certificate is being served
    char tls_fingerprint[65] = "";        // of the certificate served
    char tls_failure_logged[1024] = "";   // the last failure to load one, while it lasts
    bool tls_mode_change_logged = false;  // the TLS settings differ from what the port was started with
    uint64 refused_busy_counted = 0;      // HttpServerCounters::refused_busy already in the metrics
    // While writing fails: what was logged (by batches, and by the other database steps), so that a lasting
    // failure is logged once.
    char failure_logged[2][256] = {"", ""};
};

extern WorkerState *state;
extern IngestBatch batch;
extern int worker_number;
extern volatile sig_atomic_t shutdown_requested;

int64 now_ms();

// worker_db.cc: every transaction ------------------------------------------------------------------------

// The one way the worker runs SQL: a transaction with a snapshot and SPI, as the ingest role (see
// ingest_user()), committed with synchronous_commit at least 'local' so that an answer sent after the COMMIT
// never precedes its WAL flush. begin/commit bracket the work; on an error, abort_worker_transaction().
void begin_worker_transaction();
void commit_worker_transaction();
void abort_worker_transaction();

// Logs, once at each worker start, which role runs the ingest SQL (a WARNING when it is a superuser).
void report_ingest_role();

// Runs a database step (extension check, source refresh, /health probe) in its own error boundary: a failure
// is logged (once while it lasts) and retried later, never fatal. Returns whether it succeeded.
bool run_database_step(void (*step)(), const char *what);
void check_extension();
void refresh_sources();
void probe_commit();

// A failed write (kBatchFailure) or database step (kStepFailure): remember its 503 code and log it unless the
// same failure was already logged. The next committed batch logs that writing resumed.
enum FailureKind { kBatchFailure = 0, kStepFailure = 1 };
void note_write_failure(FailureKind kind, int sqlerrcode, const char *message);
void note_write_success();

// worker_policy.cc: who is suppressed, which sources honour deletion notifications --------------------------

// The ingest policy (pg/ingest_policy.h) for the batch being written, read again in the batch's transaction
// when segment_sources or segment_suppressions changed (their triggers bump the sources version), when the
// extension's schema changed, or a second after the last read. A failure to read it fails the batch.
const IngestPolicy *worker_ingest_policy();

// worker_tls.cc: the HTTPS settings ----------------------------------------------------------------------

// Whether the port is to speak HTTPS: segment_webhook.ssl_cert_file or ssl_key_file is set. Read when the
// worker starts its server; fixed for the worker's life.
bool tls_requested();
// Loads the certificate and key named by the settings for new connections, at the start and at each reload.
// A failure keeps what was served before (nothing, at the start: TLS handshakes are refused) and is logged
// once; a change of the TLS settings that needs a restart of the worker is logged once.
void load_tls_certificate();

// worker_batch.cc: requests into batches -------------------------------------------------------------------

// Rebuilds state->context, what the core's request checks need to know of the worker (sources, settings,
// availability): once per turn of the loop, not per request.
void refresh_webhook_context();
// The server's head_check: refuses a request from its head (an unknown write key in the URL or header, a
// wrong path or method, ...) before its body is read or decompressed. Called from inside HttpServer::poll().
std::optional<segment::HttpResponse> check_head(const segment::HttpRequest &request);

void take_ready_requests();
// After an error escaped a turn of the loop: answers 503 (retry) the requests handed out by the server and
// not routed yet, so that no connection waits for an answer that never comes.
void abandon_ready_requests();
void flush_pending();
// Counts an answer in segment_webhook_stats() and in the metrics (by the request's endpoint; `request` may be
// null when it is unknown).
void count_answer(const segment::HttpRequest *request, int status);

// admin.cc: the admin listener (worker 0 only, when segment_webhook.admin_port is set) --------------------

// Starts it when this worker serves it; logs where it listens. Returns its epoll descriptor, or -1.
int start_admin_listener();
// What the loop's wait must consider: the earliest admin deadline (-1: none), and whether requests are
// already waiting in its buffers.
int64 admin_next_deadline_ms();
bool admin_has_ready_requests();
// Answers every admin request that is ready, each in its own error boundary; called between batches, never
// inside one.
void serve_admin_requests();
void stop_admin_listener();

}  // namespace segment_pg
