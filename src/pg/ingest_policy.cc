// The ingest path's view of user deletion: who is suppressed, which sources honour Segment's deletion
// notifications, and the write of those notifications to segment_deletions. See ingest_policy.h. Plain
// C-style code over Postgres: no C++ object with a destructor lives in these frames.
#include <cstring>

#include "pg/ingest_policy.h"
#include "pg/catalog.h"
#include "pg/ingest_internal.h"

#include "pg/postgres_headers.h"

extern "C" {
#include "utils/acl.h"
}

namespace segment_pg {
namespace {

int compare_ids(const SuppressedId &a, const SuppressedId &b) {
    if (a.source_id != b.source_id) {
        return a.source_id < b.source_id ? -1 : 1;
    }
    const int order = memcmp(a.bytes, b.bytes, static_cast<size_t>(Min(a.length, b.length)));
    if (order != 0) {
        return order;
    }
    return a.length < b.length ? -1 : (a.length > b.length ? 1 : 0);
}

int compare_suppressed(const void *a, const void *b) {
    return compare_ids(*static_cast<const SuppressedId *>(a), *static_cast<const SuppressedId *>(b));
}

}  // namespace

IngestPolicy *load_ingest_policy(Oid schema, MemoryContext context) {
    IngestPolicy *policy = static_cast<IngestPolicy *>(MemoryContextAllocZero(context, sizeof(IngestPolicy)));
    if (!OidIsValid(get_relname_relid("segment_suppressions", schema))) {
        return policy;  // before ALTER EXTENSION ... UPDATE TO '0.4'
    }
    const char *nsp = quoted_schema_name(schema);
    int rc;
    // The worker keeps the sources it knows while segment_sources cannot be read (a privilege revoked): the
    // caller keeps its honoring list then too, rather than failing every batch.
    const Oid sources = get_relname_relid("segment_sources", schema);
    if (!OidIsValid(sources) || pg_class_aclcheck(sources, GetUserId(), ACL_SELECT) != ACLCHECK_OK) {
        policy->honoring_unknown = true;
    } else {
        // Not read-only: each query takes a fresh snapshot, so that it sees every change committed before the
        // caller read the sources version (the worker's batch snapshot may be older).
        rc = SPI_execute(psprintf("SELECT id FROM %s.segment_sources WHERE honor_deletions", nsp), false, 0);
        if (rc != SPI_OK_SELECT) {
            elog(ERROR, "could not read segment_sources: %s", SPI_result_code_string(rc));
        }
        const int honoring = static_cast<int>(SPI_processed);
        policy->honoring_sources = static_cast<int32 *>(
            MemoryContextAllocZero(context, sizeof(int32) * (honoring > 0 ? honoring : 1)));
        for (int i = 0; i < honoring; ++i) {
            bool is_null;
            const Datum id = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &is_null);
            if (!is_null) {
                policy->honoring_sources[policy->honoring_count++] = DatumGetInt32(id);
            }
        }
        SPI_freetuptable(SPI_tuptable);
    }

    // The suppressed ids must be read: a batch that cannot read them fails (503, retried) rather than store a
    // suppressed user's events.
    rc = SPI_execute(psprintf("SELECT DISTINCT source_id, suppressed_id FROM %s.segment_suppressions", nsp),
                     false, 0);
    if (rc != SPI_OK_SELECT) {
        elog(ERROR, "could not read segment_suppressions: %s", SPI_result_code_string(rc));
    }
    const int count = static_cast<int>(SPI_processed);
    policy->suppressed = static_cast<SuppressedId *>(
        MemoryContextAllocZero(context, sizeof(SuppressedId) * (count > 0 ? count : 1)));
    for (int i = 0; i < count; ++i) {
        bool source_null, id_null;
        const Datum source = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &source_null);
        const Datum id = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &id_null);
        if (source_null || id_null) {
            continue;
        }
        text *value = DatumGetTextPP(id);
        const int length = VARSIZE_ANY_EXHDR(value);
        char *bytes = static_cast<char *>(MemoryContextAlloc(context, length > 0 ? length : 1));
        memcpy(bytes, VARDATA_ANY(value), length);
        policy->suppressed[policy->suppressed_count++] = SuppressedId{DatumGetInt32(source), length, bytes};
    }
    SPI_freetuptable(SPI_tuptable);
    qsort(policy->suppressed, policy->suppressed_count, sizeof(SuppressedId), compare_suppressed);
    return policy;
}

bool policy_honors_deletions(const IngestPolicy *policy, int32 source_id) {
    if (policy == nullptr) {
        return false;
    }
    for (int i = 0; i < policy->honoring_count; ++i) {
        if (policy->honoring_sources[i] == source_id) {
            return true;
        }
    }
    return false;
}

bool policy_suppresses_id(const IngestPolicy *policy, int32 source_id, std::string_view id) {
    const SuppressedId key{source_id, static_cast<int32>(id.size()), id.data()};
    return bsearch(&key, policy->suppressed, policy->suppressed_count, sizeof(SuppressedId),
                   compare_suppressed) != nullptr;
}

void insert_deletion_requests(IngestBatch *batch) {
    const int count = batch->deletion_count;
    if (count == 0) {
        return;
    }
    Datum *sources = static_cast<Datum *>(palloc(sizeof(Datum) * count));
    Datum *users = static_cast<Datum *>(palloc(sizeof(Datum) * count));
    for (int i = 0; i < count; ++i) {
        sources[i] = Int32GetDatum(batch->deletions[i].source_id);
        users[i] = CStringGetTextDatum(batch->deletions[i].user_id);
    }
    // Rare (a few deletion notifications a day): not worth a kept plan.
    char *query = psprintf(
        "INSERT INTO %s.segment_deletions (source_id, user_id)"
        " SELECT pg_catalog.unnest($1), pg_catalog.unnest($2)",
        quoted_schema_name(batch->schema));
    Oid types[2] = {INT4ARRAYOID, TEXTARRAYOID};
    Datum values[2] = {make_array(sources, nullptr, count, INT4OID),
                       make_array(users, nullptr, count, TEXTOID)};
    const int rc = SPI_execute_with_args(query, 2, types, values, nullptr, false, 0);
    if (rc != SPI_OK_INSERT) {
        elog(ERROR, "insert into segment_deletions failed: %s", SPI_result_code_string(rc));
    }
}

}  // namespace segment_pg
