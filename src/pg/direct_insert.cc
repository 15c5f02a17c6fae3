// Direct heap multi-insert of a batch of events. See direct_insert.h. Plain C-style code over Postgres'
// executor helpers (the same ones COPY FROM uses); no C++ object with a destructor lives in these frames.
#include "pg/direct_insert.h"
#include "pg/direct_insert_internal.h"

#include "pg/postgres_headers.h"

extern "C" {
#include "access/genam.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/pg_collation.h"
#include "commands/sequence.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/rel.h"
}

namespace segment_pg {
namespace {

// The columns as the extension creates them, in order: the first 16 before version 0.4, all 17 since (0.4
// added signature_verified).
const ExpectedColumn kExpectedColumns[kColumns] = {{"id", INT8OID},
                                                   {"source_id", INT4OID},
                                                   {"message_id", TEXTOID},
                                                   {"type", TEXTOID},
                                                   {"event", TEXTOID},
                                                   {"name", TEXTOID},
                                                   {"category", TEXTOID},
                                                   {"user_id", TEXTOID},
                                                   {"anonymous_id", TEXTOID},
                                                   {"group_id", TEXTOID},
                                                   {"previous_id", TEXTOID},
                                                   {"timestamp", TIMESTAMPTZOID},
                                                   {"original_timestamp", TIMESTAMPTZOID},
                                                   {"sent_at", TIMESTAMPTZOID},
                                                   {"received_at", TIMESTAMPTZOID},
                                                   {"payload", JSONBOID},
                                                   {"signature_verified", BOOLOID}};

}  // namespace

bool columns_as_created(TupleDesc descriptor, const ExpectedColumn *expected) {
    for (int i = 0; i < descriptor->natts; ++i) {
        const Form_pg_attribute attribute = TupleDescAttr(descriptor, i);
        const Oid expected_collation = expected[i].type == TEXTOID ? DEFAULT_COLLATION_OID : InvalidOid;
        if (attribute->attisdropped || attribute->attgenerated != '\0' ||
            strcmp(NameStr(attribute->attname), expected[i].name) != 0 ||
            attribute->atttypid != expected[i].type || attribute->atttypmod != -1 ||
            attribute->attcollation != expected_collation) {
            return false;
        }
    }
    return true;
}

bool nothing_applies_to_rows(Relation rel) {
    return !rel->rd_rel->relispartition && rel->trigdesc == nullptr && rel->rd_rules == nullptr &&
           !rel->rd_rel->relrowsecurity;
}

RangeTblEntry *insert_entry(Oid relid, char relkind) {
    RangeTblEntry *entry = makeNode(RangeTblEntry);
    entry->rtekind = RTE_RELATION;
    entry->relid = relid;
    entry->relkind = relkind;
    entry->rellockmode = RowExclusiveLock;
    entry->requiredPerms = ACL_INSERT;
    return entry;
}

bool events_table_is_plain(Relation rel) {
    const TupleDesc descriptor = RelationGetDescr(rel);
    const char kind = rel->rd_rel->relkind;
    if ((kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE) || !nothing_applies_to_rows(rel) ||
        (descriptor->natts != kColumns && descriptor->natts != kColumnsBefore04) ||
        !columns_as_created(descriptor, kExpectedColumns)) {
        return false;
    }
    // The id: an identity column of the table (0.4 and earlier); the partitioned table's is a default that
    // draws from the same sequence (identity columns are not inherited by partitions).
    const Form_pg_attribute id = TupleDescAttr(descriptor, 0);
    return kind == RELKIND_PARTITIONED_TABLE ? id->attidentity == '\0' && id->atthasdef
                                             : id->attidentity != '\0';
}

Oid unique_key_index(Relation rel, AttrNumber source_column, AttrNumber message_column) {
    List *indexes = RelationGetIndexList(rel);
    Oid found = InvalidOid;
    ListCell *cell;
    foreach (cell, indexes) {
        Relation index = index_open(lfirst_oid(cell), AccessShareLock);
        const Form_pg_index form = index->rd_index;
        // The probe compares keys the way this index does; message ids repeated inside a batch are found
        // bytewise, which is the index's equality only under the default collation.
        if (form->indisunique && form->indisvalid && form->indisready && form->indimmediate &&
            form->indnkeyatts == 2 && form->indkey.values[0] == source_column &&
            form->indkey.values[1] == message_column && index->rd_indcollation[1] == DEFAULT_COLLATION_OID &&
            RelationGetIndexPredicate(index) == NIL && RelationGetIndexExpressions(index) == NIL) {
            found = RelationGetRelid(index);
        }
        index_close(index, AccessShareLock);
    }
    list_free(indexes);
    return found;
}

void fill_event_slot(TupleTableSlot *slot, const PendingEvent &event) {
    ExecClearTuple(slot);
    Datum *values = slot->tts_values;
    bool *nulls = slot->tts_isnull;
    values[0] = Int64GetDatum(0);  // the id is drawn later, only for rows that are inserted
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
    if (slot->tts_tupleDescriptor->natts > kColumnsBefore04) {
        values[16] = BoolGetDatum(event.signature_verified);
        nulls[16] = false;
    }
    ExecStoreVirtualTuple(slot);
}

bool *repeated_keys(const PendingEvent *events, const int *order, int count) {
    bool *repeated = static_cast<bool *>(palloc0(sizeof(bool) * count));
    for (int k = 1; k < count; ++k) {
        if (compare_events_by_key(&events[order[k - 1]], &events[order[k]]) == 0) {
            repeated[order[k]] = true;
        }
    }
    return repeated;
}

bool insert_events_directly(Oid schema, PendingEvent *events, const int *order, int count, int64 *stored) {
    *stored = 0;
    const Oid relid = get_relname_relid("segment_events", schema);
    if (!OidIsValid(relid) || pg_class_aclcheck(relid, GetUserId(), ACL_INSERT) != ACLCHECK_OK) {
        return false;  // the SPI path raises the proper error
    }
    Relation rel = try_table_open(relid, RowExclusiveLock);
    if (rel == nullptr) {
        return false;  // dropped since the name was looked up
    }
    if (rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE) {
        const bool plain = events_table_is_plain(rel);
        table_close(rel, NoLock);  // the lock stays until the end of the transaction
        return plain && insert_partitioned_directly(schema, relid, events, order, count, stored);
    }
    const Oid unique_index = events_table_is_plain(rel) ? unique_key_index(rel, 2, 3) : InvalidOid;
    if (!OidIsValid(unique_index)) {
        table_close(rel, RowExclusiveLock);
        return false;
    }
    const Oid sequence = getIdentitySequence(relid, 1, false);
    table_close(rel, NoLock);  // the lock stays until the end of the transaction

    // An executor state with one result relation, as COPY FROM sets it up.
    EState *estate = CreateExecutorState();
    ExecInitRangeTable(estate, list_make1(insert_entry(relid, RELKIND_RELATION)));
    ResultRelInfo *result = makeNode(ResultRelInfo);
    ExecInitResultRelation(estate, result, 1);
    ExecOpenIndices(result, true);  // speculative: builds what the conflict probe needs
    estate->es_output_cid = GetCurrentCommandId(true);
    Relation target = result->ri_RelationDesc;
    List *arbiters = list_make1_oid(unique_index);

    // Messages repeated within the batch: only the first of each key is a candidate.
    bool *repeated = repeated_keys(events, order, count);

    TupleTableSlot **slots = static_cast<TupleTableSlot **>(palloc(sizeof(TupleTableSlot *) * count));
    TupleTableSlot **slot_of = static_cast<TupleTableSlot **>(palloc0(sizeof(TupleTableSlot *) * count));
    int inserting = 0;
    // Probe and insert in key order: two workers writing overlapping messages then wait for each other in one
    // direction only, never in a cycle (no deadlock).
    for (int k = 0; k < count; ++k) {
        const int i = order[k];
        PendingEvent &event = events[i];
        event.outcome = EventOutcome::Duplicate;
        event.id = 0;
        if (repeated[i]) {
            continue;
        }
        TupleTableSlot *slot = table_slot_create(target, &estate->es_tupleTable);
        fill_event_slot(slot, event);
        ItemPointerData conflict;
        if (!ExecCheckIndexConstraints(result, slot, estate, &conflict, arbiters)) {
            continue;  // stored before (committed, or by a transaction it waited for)
        }
        slots[inserting++] = slot;
        slot_of[i] = slot;
        event.outcome = EventOutcome::Stored;
    }
    // Ids in arrival order, as an INSERT of the batch as received would draw them. The transaction id comes
    // first: the warehouse worker treats an id it cannot see yet as held by a transaction running at its
    // snapshot, which must then already have its transaction id.
    (void)GetCurrentTransactionId();
    for (int i = 0; i < count; ++i) {
        if (slot_of[i] != nullptr) {
            events[i].id = nextval_internal(sequence, false);
            slot_of[i]->tts_values[0] = Int64GetDatum(events[i].id);
            ExecConstraints(result, slot_of[i], estate);
            ResetPerTupleExprContext(estate);
        }
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
