// Direct heap multi-insert of a batch of events. See direct_insert.h. Plain C-style code over Postgres'
// executor helpers (the same ones COPY FROM uses); no C++ object with a destructor lives in these frames.
#include "pg/direct_insert.h"

#include "pg/postgres_headers.h"

extern "C" {
#include "access/genam.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "commands/sequence.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/rel.h"
}

namespace segment_pg {
namespace {

constexpr int kColumns = 16;
const char *const kColumnNames[kColumns] = {"id",
                                            "source_id",
                                            "message_id",
                                            "type",
                                            "event",
                                            "name",
                                            "category",
                                            "user_id",
                                            "anonymous_id",
                                            "group_id",
                                            "previous_id",
                                            "timestamp",
                                            "original_timestamp",
                                            "sent_at",
                                            "received_at",
                                            "payload"};

// Whether the table is exactly as the extension created it, so that filling its 16 columns ourselves is what
// an INSERT would do.
bool table_is_plain(Relation rel) {
    const TupleDesc descriptor = RelationGetDescr(rel);
    if (rel->rd_rel->relkind != RELKIND_RELATION || rel->trigdesc != nullptr || rel->rd_rel->relrowsecurity ||
        descriptor->natts != kColumns) {
        return false;
    }
    for (int i = 0; i < kColumns; ++i) {
        const Form_pg_attribute attribute = TupleDescAttr(descriptor, i);
        if (attribute->attisdropped || attribute->attgenerated != '\0' ||
            strcmp(NameStr(attribute->attname), kColumnNames[i]) != 0) {
            return false;
        }
    }
    return TupleDescAttr(descriptor, 0)->attidentity != '\0';
}

// The unique index on (source_id, message_id), or InvalidOid.
Oid message_index(Relation rel) {
    List *indexes = RelationGetIndexList(rel);
    Oid found = InvalidOid;
    ListCell *cell;
    foreach (cell, indexes) {
        Relation index = index_open(lfirst_oid(cell), AccessShareLock);
        const Form_pg_index form = index->rd_index;
        if (form->indisunique && form->indisvalid && form->indnkeyatts == 2 && form->indkey.values[0] == 2 &&
            form->indkey.values[1] == 3 && RelationGetIndexPredicate(index) == NIL &&
            RelationGetIndexExpressions(index) == NIL) {
            found = RelationGetRelid(index);
        }
        index_close(index, AccessShareLock);
    }
    list_free(indexes);
    return found;
}

int compare_text(Datum a, Datum b) {
    text *left = DatumGetTextPP(a);
    text *right = DatumGetTextPP(b);
    const int left_length = VARSIZE_ANY_EXHDR(left), right_length = VARSIZE_ANY_EXHDR(right);
    const int common = Min(left_length, right_length);
    const int order = memcmp(VARDATA_ANY(left), VARDATA_ANY(right), common);
    return order != 0 ? order : left_length - right_length;
}

// Orders event indexes by (source_id, message_id), then by position, so the first of equal keys comes first.
int compare_events(const void *a, const void *b, void *argument) {
    const PendingEvent *events = static_cast<const PendingEvent *>(argument);
    const int i = *static_cast<const int *>(a), j = *static_cast<const int *>(b);
    if (events[i].source_id != events[j].source_id) {
        return events[i].source_id < events[j].source_id ? -1 : 1;
    }
    const int order = compare_text(events[i].text_columns[0], events[j].text_columns[0]);
    if (order != 0) {
        return order;
    }
    return i < j ? -1 : (i > j ? 1 : 0);
}

}  // namespace

bool insert_events_directly(Oid schema, PendingEvent *events, int count, int64 *stored) {
    *stored = 0;
    const Oid relid = get_relname_relid("segment_events", schema);
    if (!OidIsValid(relid) || pg_class_aclcheck(relid, GetUserId(), ACL_INSERT) != ACLCHECK_OK) {
        return false;  // the SPI path raises the proper error
    }
    Relation rel = table_open(relid, RowExclusiveLock);
    const Oid unique_index = table_is_plain(rel) ? message_index(rel) : InvalidOid;
    if (!OidIsValid(unique_index)) {
        table_close(rel, RowExclusiveLock);
        return false;
    }
    const Oid sequence = getIdentitySequence(relid, 1, false);
    table_close(rel, NoLock);  // the lock stays until the end of the transaction

    // An executor state with one result relation, as COPY FROM sets it up.
    EState *estate = CreateExecutorState();
    RangeTblEntry *entry = makeNode(RangeTblEntry);
    entry->rtekind = RTE_RELATION;
    entry->relid = relid;
    entry->relkind = RELKIND_RELATION;
    entry->rellockmode = RowExclusiveLock;
    entry->requiredPerms = ACL_INSERT;
    ExecInitRangeTable(estate, list_make1(entry));
    ResultRelInfo *result = makeNode(ResultRelInfo);
    ExecInitResultRelation(estate, result, 1);
    ExecOpenIndices(result, true);  // speculative: builds what the conflict probe needs
    estate->es_output_cid = GetCurrentCommandId(true);
    Relation target = result->ri_RelationDesc;
    List *arbiters = list_make1_oid(unique_index);

    // Messages repeated within the batch: only the first of each key is a candidate.
    int *order = static_cast<int *>(palloc(sizeof(int) * count));
    bool *repeated = static_cast<bool *>(palloc0(sizeof(bool) * count));
    for (int i = 0; i < count; ++i) {
        order[i] = i;
    }
    qsort_arg(order, count, sizeof(int), compare_events, events);
    for (int k = 1; k < count; ++k) {
        const PendingEvent &previous = events[order[k - 1]], &current = events[order[k]];
        if (previous.source_id == current.source_id &&
            compare_text(previous.text_columns[0], current.text_columns[0]) == 0) {
            repeated[order[k]] = true;
        }
    }

    TupleTableSlot **slots = static_cast<TupleTableSlot **>(palloc(sizeof(TupleTableSlot *) * count));
    int inserting = 0;
    for (int i = 0; i < count; ++i) {
        PendingEvent &event = events[i];
        event.outcome = EventOutcome::Duplicate;
        if (repeated[i]) {
            continue;
        }
        TupleTableSlot *slot = table_slot_create(target, &estate->es_tupleTable);
        ExecClearTuple(slot);
        Datum *values = slot->tts_values;
        bool *nulls = slot->tts_isnull;
        values[0] = Int64GetDatum(0);  // the id is drawn below, only for rows that are inserted
        nulls[0] = false;
        values[1] = Int32GetDatum(event.source_id);
        nulls[1] = false;
        for (int t = 0; t < 9; ++t) {
            values[2 + t] = event.text_columns[t];
            nulls[2 + t] = event.text_nulls[t];
        }
        values[11] = TimestampTzGetDatum(event.timestamp);
        nulls[11] = false;
        values[12] = TimestampTzGetDatum(event.original_timestamp);
        nulls[12] = event.original_timestamp_null;
        values[13] = TimestampTzGetDatum(event.sent_at);
        nulls[13] = event.sent_at_null;
        values[14] = TimestampTzGetDatum(event.received_at);
        nulls[14] = false;
        values[15] = JsonbPGetDatum(event.payload);
        nulls[15] = false;
        ExecStoreVirtualTuple(slot);
        ItemPointerData conflict;
        if (!ExecCheckIndexConstraints(result, slot, estate, &conflict, arbiters)) {
            continue;  // stored before (committed, or by a transaction it waited for)
        }
        slot->tts_values[0] = Int64GetDatum(nextval_internal(sequence, false));
        ExecConstraints(result, slot, estate);
        slots[inserting++] = slot;
        event.outcome = EventOutcome::Stored;
        ResetPerTupleExprContext(estate);
    }

    if (inserting > 0) {
        BulkInsertState bulk = GetBulkInsertState();
        table_multi_insert(target, slots, inserting, estate->es_output_cid, 0, bulk);
        FreeBulkInsertState(bulk);
        for (int i = 0; i < inserting; ++i) {
            // A unique violation here means another transaction stored the same message after the probe.
            ExecInsertIndexTuples(result, slots[i], estate, false, false, nullptr, NIL);
            ResetPerTupleExprContext(estate);
        }
    }
    *stored = inserting;

    ExecResetTupleTable(estate->es_tupleTable, false);
    ExecCloseResultRelations(estate);  // also closes the indexes
    ExecCloseRangeTableRelations(estate);
    FreeExecutorState(estate);
    return true;
}

}  // namespace segment_pg
