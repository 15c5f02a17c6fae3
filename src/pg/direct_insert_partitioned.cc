// The direct write path into the partitioned segment_events of version 0.5: the keys first (a multi-insert
// into segment_event_keys, deduplicated by probing its primary key, as ON CONFLICT would), then the new
// events, routed to their day partitions the way COPY FROM routes rows, and multi-inserted there. See
// direct_insert_internal.h. Plain C-style code over Postgres' executor helpers; no C++ object with a
// destructor lives in these frames.
#include "pg/direct_insert_internal.h"

#include "pg/postgres_headers.h"

extern "C" {
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "commands/sequence.h"
#include "executor/execPartition.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/rel.h"
}

namespace segment_pg {
namespace {

// segment_event_keys as the extension creates it.
constexpr int kKeyColumns = 4;
const ExpectedColumn kKeyColumnTypes[kKeyColumns] = {
    {"source_id", INT4OID}, {"message_id", TEXTOID}, {"received_at", TIMESTAMPTZOID}, {"event_id", INT8OID}};

bool keys_table_is_plain(Relation rel) {
    return rel->rd_rel->relkind == RELKIND_RELATION && nothing_applies_to_rows(rel) &&
           RelationGetDescr(rel)->natts == kKeyColumns &&
           columns_as_created(RelationGetDescr(rel), kKeyColumnTypes);
}

// The rows bound for one partition.
struct PartitionRows {
    ResultRelInfo *partition;
    TupleTableSlot **slots;
    int count;
};

}  // namespace

bool insert_partitioned_directly(Oid schema, Oid relid, PendingEvent *events, const int *order, int count,
                                 int64 *stored) {
    *stored = 0;
    const Oid keys_relid = get_relname_relid("segment_event_keys", schema);
    const Oid sequence = get_relname_relid("segment_events_id_seq", schema);
    if (!OidIsValid(keys_relid) || !OidIsValid(sequence) || get_rel_relkind(sequence) != RELKIND_SEQUENCE ||
        pg_class_aclcheck(keys_relid, GetUserId(), ACL_INSERT) != ACLCHECK_OK) {
        return false;
    }
    Relation keys = try_table_open(keys_relid, RowExclusiveLock);
    if (keys == nullptr) {
        return false;
    }
    const Oid key_index = keys_table_is_plain(keys) ? unique_key_index(keys, 1, 2) : InvalidOid;
    table_close(keys, NoLock);  // the lock stays until the end of the transaction
    if (!OidIsValid(key_index)) {
        return false;
    }

    // An executor state with two result relations (the keys, the partitioned table), and partition routing
    // for the second, as COPY FROM sets them up.
    EState *estate = CreateExecutorState();
    ExecInitRangeTable(estate, list_make2(insert_entry(keys_relid, RELKIND_RELATION),
                                          insert_entry(relid, RELKIND_PARTITIONED_TABLE)));
    ResultRelInfo *keys_result = makeNode(ResultRelInfo);
    ExecInitResultRelation(estate, keys_result, 1);
    ExecOpenIndices(keys_result, true);  // speculative: builds what the conflict probe needs
    ResultRelInfo *events_result = makeNode(ResultRelInfo);
    ExecInitResultRelation(estate, events_result, 2);
    estate->es_output_cid = GetCurrentCommandId(true);
    Relation parent = events_result->ri_RelationDesc;
    ModifyTableState *modify = makeNode(ModifyTableState);
    modify->ps.plan = nullptr;
    modify->ps.state = estate;
    modify->operation = CMD_INSERT;
    modify->mt_nrels = 1;
    modify->resultRelInfo = events_result;
    modify->rootResultRelInfo = events_result;
    PartitionTupleRouting *routing = ExecSetupPartitionTupleRouting(estate, parent);
    List *arbiters = list_make1_oid(key_index);
    bool *repeated = repeated_keys(events, order, count);

    TupleTableSlot **key_slots = static_cast<TupleTableSlot **>(palloc(sizeof(TupleTableSlot *) * count));
    TupleTableSlot **event_slot_of =
        static_cast<TupleTableSlot **>(palloc0(sizeof(TupleTableSlot *) * count));
    TupleTableSlot **key_slot_of = static_cast<TupleTableSlot **>(palloc0(sizeof(TupleTableSlot *) * count));
    int inserting = 0;
    // Probe in key order, and insert the keys in that order: two workers writing overlapping messages then
    // wait for each other in one direction only (no deadlock).
    for (int k = 0; k < count; ++k) {
        const int i = order[k];
        PendingEvent &event = events[i];
        event.outcome = EventOutcome::Duplicate;
        event.id = 0;
        if (repeated[i]) {
            continue;
        }
        TupleTableSlot *key = table_slot_create(keys_result->ri_RelationDesc, &estate->es_tupleTable);
        ExecClearTuple(key);
        key->tts_values[0] = Int32GetDatum(event.source_id);
        key->tts_values[1] = event.text_columns[0];
        key->tts_values[2] = TimestampTzGetDatum(event.received_at);
        key->tts_values[3] = Int64GetDatum(0);
        memset(key->tts_isnull, 0, sizeof(bool) * kKeyColumns);
        ExecStoreVirtualTuple(key);
        ItemPointerData conflict;
        if (!ExecCheckIndexConstraints(keys_result, key, estate, &conflict, arbiters)) {
            continue;  // stored before (committed, or by a transaction it waited for)
        }
        key_slots[inserting++] = key;
        key_slot_of[i] = key;
        event.outcome = EventOutcome::Stored;
    }

    // Ids in arrival order, after the transaction id (see direct_insert.cc); each new event goes to its
    // partition. A partition that is not plain (a trigger of its own, another column order) sends the whole
    // batch to the INSERT path, before anything was written.
    PartitionRows *partitions = static_cast<PartitionRows *>(palloc0(sizeof(PartitionRows) * Max(count, 1)));
    int partition_count = 0;
    bool plain = true;
    if (inserting > 0) {
        (void)GetCurrentTransactionId();
    }
    for (int i = 0; i < count && plain; ++i) {
        if (key_slot_of[i] == nullptr) {
            continue;
        }
        TupleTableSlot *slot = MakeSingleTupleTableSlot(RelationGetDescr(parent), &TTSOpsVirtual);
        estate->es_tupleTable = lappend(estate->es_tupleTable, slot);
        fill_event_slot(slot, events[i]);
        ResultRelInfo *partition = ExecFindPartition(modify, events_result, routing, slot, estate);
        if (partition->ri_TrigDesc != nullptr || partition->ri_RootToPartitionMap != nullptr ||
            partition->ri_RelationDesc->rd_rules != nullptr) {
            plain = false;
            break;
        }
        events[i].id = nextval_internal(sequence, false);
        slot->tts_values[0] = Int64GetDatum(events[i].id);
        key_slot_of[i]->tts_values[3] = Int64GetDatum(events[i].id);
        ExecConstraints(partition, slot, estate);
        ResetPerTupleExprContext(estate);
        event_slot_of[i] = slot;
        PartitionRows *rows = nullptr;
        for (int p = 0; p < partition_count; ++p) {
            if (partitions[p].partition == partition) {
                rows = &partitions[p];
            }
        }
        if (rows == nullptr) {
            rows = &partitions[partition_count++];
            rows->partition = partition;
            rows->slots = static_cast<TupleTableSlot **>(palloc(sizeof(TupleTableSlot *) * count));
        }
        rows->slots[rows->count++] = slot;
    }

    if (plain && inserting > 0) {
        BulkInsertState bulk = GetBulkInsertState();
        table_multi_insert(keys_result->ri_RelationDesc, key_slots, inserting, estate->es_output_cid, 0,
                           bulk);
        for (int i = 0; i < inserting; ++i) {
            // A unique violation here means another transaction stored the same message after the probe.
            ExecInsertIndexTuples(keys_result, key_slots[i], estate, false, false, nullptr, NIL);
            ResetPerTupleExprContext(estate);
        }
        for (int p = 0; p < partition_count; ++p) {
            const PartitionRows &rows = partitions[p];
            ReleaseBulkInsertStatePin(bulk);
            table_multi_insert(rows.partition->ri_RelationDesc, rows.slots, rows.count, estate->es_output_cid,
                               0, bulk);
            for (int r = 0; r < rows.count; ++r) {
                ExecInsertIndexTuples(rows.partition, rows.slots[r], estate, false, false, nullptr, NIL);
                ResetPerTupleExprContext(estate);
            }
        }
        FreeBulkInsertState(bulk);
        *stored = inserting;
    }

    ExecCleanupTupleRouting(modify, routing);
    ExecResetTupleTable(estate->es_tupleTable, false);
    ExecCloseResultRelations(estate);  // also closes the indexes
    ExecCloseRangeTableRelations(estate);
    FreeExecutorState(estate);
    if (!plain) {
        for (int i = 0; i < count; ++i) {
            events[i].id = 0;  // the ids drawn are simply not used
        }
    }
    return plain;
}

}  // namespace segment_pg
