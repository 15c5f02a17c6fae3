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
#include <optional>
#include <string>
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
};

struct WorkerState {
    segment::HttpServer *server = nullptr;
    segment::SourceDirectory sources;
    std::vector<std::string> cors_origins;  // segment_webhook.cors_origins, split
    segment::WebhookContext context;        // see refresh_webhook_context()
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

}  // namespace segment_pg
