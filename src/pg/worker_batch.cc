// The HTTP worker's batches: each request the server hands out is answered at once (errors, /health) or
// queued; queued requests are written in one transaction and answered after its COMMIT (200 with counts, 400
// for a body that is not JSON, 503 with Retry-After when the database could not commit). See worker_state.h.
// Core headers (through worker_state.h) before any Postgres header.
#include "core/rate_limit.h"
#include "pg/worker_state.h"
#include "pg/catalog.h"
#include "pg/cpp_guard.h"
#include "pg/events_notify.h"
#include "pg/jsonb_builder.h"
#include "pg/metrics.h"
#include "pg/rate_limit_shared.h"
#include "pg/settings.h"
#include "pg/shared.h"

#include <cstring>
#include <string>
#include <vector>

#include "pg/postgres_headers.h"

extern "C" {
#include "pgstat.h"
}

namespace segment_pg {
namespace {

void respond_error(uint64_t connection, const segment::HttpRequest *request, int status, const char *code,
                   const char *message, bool retry,
                   const std::vector<std::pair<std::string, std::string>> *headers = nullptr) {
    count_answer(request, status);
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

void answer_pending(bool committed, const char *failure_code, const char *failure) {
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
        // A deletion notification recorded in segment_deletions was accepted (it is carried out within
        // seconds).
        for (int i = 0; i < batch.deletion_count; ++i) {
            ++state->pending[static_cast<size_t>(batch.deletions[i].request)].accepted;
        }
    }
    for (size_t i = 0; i < count; ++i) {
        const PendingRequest &request = state->pending[i];
        if (!committed && request.rate_charged) {
            // Nothing of it was stored: its retry must not pay for it twice.
            refund_rate_limit(request.source_id, request.charged_events);
        }
        if (!committed) {
            respond_error(request.connection, request.request, 503, failure_code, failure, true,
                          &request.headers);
        } else if (request.invalid_json) {
            respond_error(request.connection, request.request, 400, "invalid_json",
                          request.json_error.c_str(), false, &request.headers);
        } else {
            char body[160];
            snprintf(body, sizeof body,
                     "{\"success\":true,\"accepted\":" INT64_FORMAT ",\"duplicates\":" INT64_FORMAT
                     ",\"rejected\":" INT64_FORMAT "}",
                     request.accepted, request.duplicates, request.rejected);
            count_answer(request.request, 200);  // before respond(), which frees the request
            run_cpp("answering a request", [&] {
                segment::HttpResponse response;
                response.body = body;
                response.extra_headers = request.headers;
                state->server->respond(request.connection, response, now_ms());
            });
        }
    }
}

// Queues the body of pending request `index` into the batch (in the batch's transaction).
void queue_request(size_t index) {
    PendingRequest &request = state->pending[index];
    const std::string &body = request.body_rewritten ? request.rewritten_body : request.request->body();
    if (!request.invalid_json) {
        char *error_message = nullptr;
        MemoryContext caller = MemoryContextSwitchTo(batch.context);
        Jsonb *jsonb = json_to_jsonb(body.data(), body.size(), &error_message);
        MemoryContextSwitchTo(caller);
        const segment::MessageType *implied_type = request.has_implied_type ? &request.implied_type : nullptr;
        const char *client_ip = request.client_ip.empty() ? nullptr : request.client_ip.c_str();
        if (jsonb != nullptr) {
            ingest_queue_body(&batch, request.source_id, static_cast<int32>(index), request.received_at,
                              jsonb, implied_type, client_ip, request.signature);
            return;
        }
        // A value Postgres cannot store costs only the message that holds it.
        if (ingest_queue_unparsed_body(&batch, request.source_id, static_cast<int32>(index),
                                       request.received_at, body.data(), body.size(), implied_type, client_ip,
                                       request.signature, &error_message)) {
            return;
        }
        run_cpp("recording a parse error", [&] {
            request.invalid_json = true;
            request.json_error = error_message;
        });
    }
    ingest_queue_rejection(&batch, request.source_id, static_cast<int32>(index), request.received_at,
                           "invalid_json", request.json_error.c_str(), body.data(), body.size());
}

// The name of source `id` as the worker last read it (into `buffer`), or null when it is unknown.
const char *source_name(int32 id, char *buffer, size_t size) {
    return run_cpp("naming a source", [&]() -> const char * {
        const auto found = state->source_names.find(id);
        if (found == state->source_names.end()) {
            return nullptr;
        }
        snprintf(buffer, size, "%s", found->second.c_str());
        return buffer;
    });
}

// The committed batch in the metrics: its latency and size, its events by source, its dead letters by source
// and reason. Reads the outcomes, so it runs before ingest_batch_reset().
void record_batch_metrics(int64 commit_microseconds) {
    metrics_observe_batch(commit_microseconds, batch.event_count + batch.rejection_count);
    char name[kMetricNameBytes];
    if (batch.event_count > 0) {
        int32 *sources = static_cast<int32 *>(palloc(sizeof(int32) * batch.event_count));
        uint64 *stored = static_cast<uint64 *>(palloc0(sizeof(uint64) * batch.event_count));
        uint64 *duplicates = static_cast<uint64 *>(palloc0(sizeof(uint64) * batch.event_count));
        int distinct = 0;
        for (int i = 0; i < batch.event_count; ++i) {
            const PendingEvent &event = batch.events[i];
            int slot = 0;
            while (slot < distinct && sources[slot] != event.source_id) {
                ++slot;
            }
            if (slot == distinct) {
                sources[distinct++] = event.source_id;
            }
            stored[slot] += event.outcome == EventOutcome::Stored ? 1 : 0;
            duplicates[slot] += event.outcome == EventOutcome::Duplicate ? 1 : 0;
        }
        for (int slot = 0; slot < distinct; ++slot) {
            metrics_count_events(sources[slot], source_name(sources[slot], name, sizeof name), stored[slot],
                                 duplicates[slot]);
        }
        pfree(sources);
        pfree(stored);
        pfree(duplicates);
    }
    for (int i = 0; i < batch.rejection_count; ++i) {
        const PendingRejection &rejection = batch.rejections[i];
        metrics_count_rejection(rejection.source_id, source_name(rejection.source_id, name, sizeof name),
                                rejection.reason);
    }
}

// The live tail (events_notify.h): one NOTIFY per source of the batch, in its transaction, before COMMIT.
void notify_batch() {
    SourceNotice *notices;
    const int count = count_batch_by_source(&batch, &notices);
    // Longer than the notification keeps (segment::kNotifiedNameLimit), so that the cut happens there, on a
    // character boundary.
    char name[segment::kNotifiedNameLimit + 8];
    for (int i = 0; i < count; ++i) {
        notify_source(source_name(notices[i].source_id, name, sizeof name), notices[i].counts);
    }
    pfree(notices);
}

}  // namespace

// Writes every pending request in one transaction, then answers them all: 200 (or 400 for a body that is not
// JSON, stored as a dead letter) after COMMIT, 503 with Retry-After if the database could not commit.
void flush_pending() {
    if (state->pending.empty()) {
        return;
    }
    MemoryContext worker_context = CurrentMemoryContext;
    volatile bool committed = false;
    char failure[512] = "";
    const char *volatile failure_code = "database_unavailable";
    const int64 stored_before = batch.stored, duplicates_before = batch.duplicates,
                rejected_before = batch.rejected;
    pgstat_report_activity(STATE_RUNNING, "segment_webhook: storing a batch");
    const TimestampTz started = GetCurrentTimestamp();
    volatile TimestampTz finished = started;
    PG_TRY();
    {
        begin_worker_transaction();
        batch.schema = state->schema;
        batch.policy = worker_ingest_policy();
        for (size_t i = 0; i < state->pending.size(); ++i) {
            queue_request(i);
        }
        ingest_batch_flush(&batch);
        if (settings.notify && notifications_welcome()) {
            notify_batch();
        }
        commit_worker_transaction();
        finished = GetCurrentTimestamp();
        committed = true;
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(worker_context);
        ErrorData *error = CopyErrorData();
        FlushErrorState();
        abort_worker_transaction();
        snprintf(failure, sizeof failure, "the database could not store the batch: %s", error->message);
        char message[512];
        snprintf(message, sizeof message, "batches are not stored: %s", error->message);
        note_write_failure(kBatchFailure, error->sqlerrcode, message);
        failure_code = storage_error_code(error->sqlerrcode);
        FreeErrorData(error);
    }
    PG_END_TRY();
    MemoryContextSwitchTo(worker_context);
    if (!committed) {
        state->next_health_probe_ms = 0;  // /health probes again instead of trusting an older success
        // A dropped extension or a changed schema shows up here first: look at once, and when the extension
        // itself is gone, say so rather than a symptom of it.
        run_database_step(check_extension, "looking up the extension");
        if (!OidIsValid(state->schema)) {
            failure_code = "extension_missing";
            snprintf(
                failure, sizeof failure,
                "the segment_webhook extension is not installed in database \"%s\"; run CREATE EXTENSION "
                "segment_webhook",
                settings.database);
        }
    }
    answer_pending(committed, failure_code, failure);
    if (committed) {
        record_batch_metrics(finished - started);
    }
    ingest_batch_reset(&batch);
    run_cpp("clearing the batch", [] {
        state->pending.clear();
        state->pending_messages = 0;
        state->first_pending_ms = -1;
    });
    if (committed) {
        note_write_success();
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

namespace {

// /health: 200 when the extension exists and a write transaction commits (probed at most once a second).
void answer_health(uint64_t connection, const segment::HttpRequest *request) {
    const int64 now = now_ms();
    if (OidIsValid(state->schema) && now >= state->next_health_probe_ms) {
        state->health_ok = run_database_step(probe_commit, "probing the database for /health");
        state->next_health_probe_ms = now + 1000;
    }
    if (!OidIsValid(state->schema)) {
        respond_error(connection, request, 503, "extension_missing",
                      "the segment_webhook extension is not installed in the worker's database", true);
    } else if (!state->health_ok || shutdown_requested) {
        respond_error(connection, request, 503, "database_unavailable",
                      shutdown_requested ? "the server is shutting down" : "the database cannot commit",
                      true);
    } else {
        count_answer(request, 200);
        run_cpp("answering /health", [&] {
            segment::HttpResponse response;
            response.body = "{\"status\":\"ok\"}";
            state->server->respond(connection, response, now_ms());
        });
    }
}

}  // namespace

void refresh_webhook_context() {
    segment::WebhookContext &context = state->context;
    context.sources = &state->sources;
    context.ingest_available = OidIsValid(state->schema) && !shutdown_requested;
    if (!OidIsValid(state->schema)) {
        context.unavailable_code = "extension_missing";
        context.unavailable_message = "the segment_webhook extension is not installed in database \"" +
                                      std::string(settings.database) +
                                      "\"; run CREATE EXTENSION segment_webhook";
    } else {
        context.unavailable_code = "shutting_down";
        context.unavailable_message = "the server is shutting down; retry";
    }
    context.retry_after_seconds = static_cast<uint32_t>(settings.retry_after_s);
    context.max_body_bytes = static_cast<size_t>(settings.max_request_size);
    context.cors_origins = state->cors_origins;
    context.trust_proxy = settings.trust_proxy;
    context.rate_limit_room = rate_limit_room;
}

std::optional<segment::HttpResponse> check_head(const segment::HttpRequest &request) {
    std::optional<segment::HttpResponse> refusal = segment::check_request_head(request, state->context);
    if (refusal) {
        count_answer(&request, refusal->status);
    }
    return refusal;
}

// Decides what to do with each request the server handed out: answer at once, or add it to the batch.
void take_ready_requests() {
    const size_t count = run_cpp("reading requests", [] { return state->ready.size(); });
    for (size_t i = 0; i < count; ++i) {
        state->ready_taken = i;  // for abandon_ready_requests(), should routing this one fail
        const TimestampTz received_at = GetCurrentTimestamp();
        const bool health = run_cpp("routing a request", [&] {
            const segment::ReadyRequest &ready = state->ready[i];
            const segment::WebhookContext &context = state->context;
            segment::WebhookDecision decision = segment::decide(*ready.request, ready.peer, context);
            if (decision.action == segment::WebhookAction::Health) {
                return true;
            }
            if (decision.action == segment::WebhookAction::Respond) {
                count_answer(ready.request, decision.response.status);
                state->server->respond(ready.connection, decision.response, now_ms());
                return false;
            }
            add_to_counter(kBytesReceived, ready.request->body().size());
            if (decision.max_events_per_second) {
                uint32 retry_after_seconds;
                if (!charge_rate_limit(decision.source_id, *decision.max_events_per_second,
                                       decision.event_count, &retry_after_seconds)) {
                    // Answered before anything is queued: nothing of a refused request is stored.
                    segment::HttpResponse response =
                        segment::rate_limited_response(*decision.max_events_per_second, retry_after_seconds);
                    response.extra_headers = std::move(decision.headers);
                    state->server->respond(ready.connection, response, now_ms());
                    count_answer(ready.request, response.status);
                    return false;
                }
            }
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
            pending.signature = decision.signature;
            pending.headers = std::move(decision.headers);
            pending.accepted = pending.duplicates = pending.rejected = 0;
            pending.rate_charged = decision.max_events_per_second.has_value();
            pending.charged_events = decision.event_count;
            state->pending.push_back(std::move(pending));
            state->pending_messages +=
                decision.json.valid ? static_cast<int>(decision.json.message_count) : 1;
            if (state->first_pending_ms < 0) {
                state->first_pending_ms = ready.received_ms;
            }
            return false;
        });
        if (health) {
            answer_health(state->ready[i].connection, state->ready[i].request);
        }
    }
    run_cpp("reading requests", [] { state->ready.clear(); });
    state->ready_taken = 0;
}

void abandon_ready_requests() {
    // ready_taken moves past each request before it is answered: should answering fail too, the next
    // recovery goes on with the one after it.
    while (state->ready_taken < state->ready.size()) {
        const segment::ReadyRequest &ready = state->ready[state->ready_taken++];
        respond_error(ready.connection, ready.request, 503, "database_unavailable",
                      "the worker could not handle this request; retry", true);
    }
    state->ready.clear();
    state->ready_taken = 0;
}

// Counted from Postgres frames and from inside run_cpp() (the head check): nothing here throws or errors.
void count_answer(const segment::HttpRequest *request, int status) {
    add_to_counter(kRequests);
    if (status == 429) {
        add_to_counter(kRateLimited);  // rate limited: not counted as a request error
    } else if (status >= 400 && status < 500) {
        add_to_counter(kRequestErrors);
    }
    metrics_count_request(request != nullptr ? segment::classify_ingest_endpoint(request->path())
                                             : segment::RequestEndpoint::Other,
                          status);
}

}  // namespace segment_pg
