// Poison isolated per message: a body that json_to_jsonb() refused is split into its messages by the core
// (json_poison.h). A message holding a value Postgres cannot store (\u0000, a lone surrogate, bytes that are
// not UTF-8, a number numeric cannot hold) is dead-lettered on its own with its own bytes; the others are
// queued as the body would have been. Only a body that is not JSON at all is left to the caller (400).
//
// C++/Postgres boundary: the split lives on the heap behind a file-level pointer, made and freed inside
// run_cpp(); the frames below only read it (vector indexing and c_str() do not throw) and call Postgres.
#include "core/json_poison.h"
#include "pg/cpp_guard.h"
#include "pg/ingest.h"
#include "pg/jsonb_builder.h"

#include "pg/postgres_headers.h"

namespace segment_pg {
namespace {

segment::MessageSplit *current_split = nullptr;  // the body being split; replaced on the next call

}  // namespace

bool ingest_queue_unparsed_body(IngestBatch *batch, int32 source_id, int32 request, TimestampTz received_at,
                                const char *body, size_t length, const segment::MessageType *implied_type,
                                const char *client_ip, segment::SignatureCoverage signature, char **error) {
    run_cpp("splitting a body into messages", [&] {
        delete current_split;
        current_split = nullptr;
        current_split = new segment::MessageSplit(segment::split_messages(std::string_view(body, length)));
    });
    const segment::MessageSplit &split = *current_split;
    if (!split.valid) {
        *error = pstrdup(split.error.c_str());
        return false;
    }
    if (split.envelope_poisoned || split.messages.empty()) {
        // The envelope's own fields (context, …) would be part of every message: the body goes as one.
        const char *reason = "invalid_json";
        const char *detail =
            split.envelope_poisoned ? split.envelope_detail.c_str() : "the body holds no message";
        if (split.envelope_poisoned) {
            reason = segment::poison_reason_code(split.envelope_poison).data();
        }
        ingest_queue_rejection(batch, source_id, request, received_at, reason, detail, body, length);
        return true;
    }

    // Dead-letter each poisoned message, and each message whose own parse Postgres refuses (a number).
    const size_t count = split.messages.size();
    bool *drop = static_cast<bool *>(palloc0(sizeof(bool) * count));
    size_t kept = 0;
    for (size_t i = 0; i < count; ++i) {
        const segment::MessageSpan &span = split.messages[i];
        const char *bytes = body + span.begin;
        const size_t size = span.end - span.begin;
        if (span.poison != segment::PoisonKind::None) {
            ingest_queue_rejection(batch, source_id, request, received_at,
                                   segment::poison_reason_code(span.poison).data(), span.detail.c_str(),
                                   bytes, size);
            drop[i] = true;
            continue;
        }
        char *message_error = nullptr;
        MemoryContext caller = MemoryContextSwitchTo(batch->context);
        Jsonb *message = json_to_jsonb(bytes, size, &message_error);
        MemoryContextSwitchTo(caller);
        if (message == nullptr) {
            ingest_queue_rejection(batch, source_id, request, received_at, "unstorable_value", message_error,
                                   bytes, size);
            drop[i] = true;
            continue;
        }
        pfree(message);
        ++kept;
    }
    if (kept == 0) {
        return true;
    }

    // The rest, as the body would have been queued (envelope fields and all).
    const char *rest = nullptr;
    size_t rest_length = 0;
    run_cpp("removing poisoned messages", [&] {
        std::vector<bool> dropped(drop, drop + count);
        const std::string remaining = segment::body_without(std::string_view(body, length), split, dropped);
        char *copy = static_cast<char *>(MemoryContextAllocExtended(batch->context, remaining.size() + 1,
                                                                    MCXT_ALLOC_NO_OOM | MCXT_ALLOC_HUGE));
        if (copy == nullptr) {
            throw std::bad_alloc();
        }
        memcpy(copy, remaining.data(), remaining.size());
        copy[remaining.size()] = '\0';
        rest = copy;
        rest_length = remaining.size();
    });
    char *rest_error = nullptr;
    MemoryContext caller = MemoryContextSwitchTo(batch->context);
    Jsonb *jsonb = json_to_jsonb(rest, rest_length, &rest_error);
    MemoryContextSwitchTo(caller);
    if (jsonb == nullptr) {
        // Cannot happen when each message parsed on its own; keep the bytes rather than lose them.
        ingest_queue_rejection(batch, source_id, request, received_at, "invalid_json", rest_error, rest,
                               rest_length);
        return true;
    }
    if (signature == segment::SignatureCoverage::FirstElement && drop[0]) {
        signature = segment::SignatureCoverage::None;  // the signed element is not among the rest
    }
    ingest_queue_body(batch, source_id, request, received_at, jsonb, implied_type, client_ip, signature);
    return true;
}

}  // namespace segment_pg
