// The HTTP worker's copy of the ingest policy (pg/ingest_policy.h): the suppressed ids and the sources that
// honour deletion notifications, kept in memory between batches and read again inside a batch's transaction
// when it may have changed. See worker_state.h. Plain C-style frames: they call Postgres and may longjmp; no
// C++ object with a destructor lives here.
#include "pg/worker_state.h"
#include "pg/ingest_policy.h"
#include "pg/shared.h"

#include "pg/postgres_headers.h"

namespace segment_pg {
namespace {

constexpr int64 kPolicyRefreshMs = 1000;

MemoryContext policy_context = nullptr;  // holds `policy`; a child of TopMemoryContext
IngestPolicy *policy = nullptr;
Oid policy_schema = InvalidOid;
uint64 policy_version = 0;
int64 next_policy_load_ms = 0;

}  // namespace

const IngestPolicy *worker_ingest_policy() {
    const uint64 version = sources_version();
    const int64 now = now_ms();
    if (policy != nullptr && policy_schema == state->schema && version == policy_version &&
        now < next_policy_load_ms) {
        return policy;
    }
    // Read into a context of the transaction, kept only once the read succeeded: an error leaves the previous
    // policy in place and the batch fails (503, retried) rather than storing a suppressed user's events.
    MemoryContext fresh =
        AllocSetContextCreate(CurrentMemoryContext, "segment_webhook ingest policy", ALLOCSET_SMALL_SIZES);
    IngestPolicy *loaded = load_ingest_policy(state->schema, fresh);
    if (loaded->honoring_unknown && policy != nullptr && policy->honoring_count > 0) {
        // segment_sources unreadable: the sources known before still honour deletion notifications.
        loaded->honoring_sources =
            static_cast<int32 *>(MemoryContextAlloc(fresh, sizeof(int32) * policy->honoring_count));
        memcpy(loaded->honoring_sources, policy->honoring_sources, sizeof(int32) * policy->honoring_count);
        loaded->honoring_count = policy->honoring_count;
    }
    MemoryContextSetParent(fresh, TopMemoryContext);
    if (policy_context != nullptr) {
        MemoryContextDelete(policy_context);
    }
    policy_context = fresh;
    policy = loaded;
    policy_schema = state->schema;
    policy_version = version;
    next_policy_load_ms = now + kPolicyRefreshMs;
    return policy;
}

}  // namespace segment_pg
