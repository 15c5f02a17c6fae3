// Probe-then-INSERT for a segment_events with rules. See rule_insert.h. Plain C-style code over SPI: no C++
// object with a destructor lives in these frames.
#include "pg/rule_insert.h"

#include "pg/catalog.h"

#include "pg/postgres_headers.h"

extern "C" {
#include "access/table.h"
#include "utils/rel.h"
}

namespace segment_pg {
namespace {

struct RulePlans {
    Oid schema = InvalidOid;
    bool stale = false;
    bool signature_column = false;  // insert fills signature_verified ($16)
    bool partitioned = false;       // probe inserts the key into segment_event_keys (a row back: new)
    SPIPlanPtr probe = nullptr;
    SPIPlanPtr insert = nullptr;
};
RulePlans rule_plans;

void prepare(Oid schema) {
    const bool signature_column = events_have_signature_column(schema);
    const bool partitioned = events_are_partitioned(schema);
    if (rule_plans.schema == schema && !rule_plans.stale && rule_plans.signature_column == signature_column &&
        rule_plans.partitioned == partitioned && rule_plans.probe != nullptr &&
        rule_plans.insert != nullptr) {
        return;
    }
    if (rule_plans.probe != nullptr) {
        SPI_freeplan(rule_plans.probe);
    }
    if (rule_plans.insert != nullptr) {
        SPI_freeplan(rule_plans.insert);
    }
    rule_plans = RulePlans();
    const char *nsp = quoted_schema_name(schema);
    Oid probe_types[3] = {INT4OID, TEXTOID, TIMESTAMPTZOID};
    // Partitioned (0.5 on): the key decides, as on the other paths; the event's id is not known (a rule may
    // put the row anywhere), so the key's event_id stays NULL.
    SPIPlanPtr probe = SPI_prepare(
        partitioned
            ? psprintf("INSERT INTO %s.segment_event_keys (source_id, message_id, received_at)"
                       " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1",
                       nsp)
            : psprintf("SELECT 1 FROM %s.segment_events WHERE source_id = $1 AND message_id = $2 LIMIT 1",
                       nsp),
        partitioned ? 3 : 2, probe_types);
    if (probe == nullptr) {
        elog(ERROR, "could not prepare the probe of segment_events: %s", SPI_result_code_string(SPI_result));
    }
    Oid insert_types[16] = {INT4OID,        TEXTOID,        TEXTOID,  TEXTOID, TEXTOID,        TEXTOID,
                            TEXTOID,        TEXTOID,        TEXTOID,  TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID,
                            TIMESTAMPTZOID, TIMESTAMPTZOID, JSONBOID, BOOLOID};
    SPIPlanPtr insert = SPI_prepare(
        psprintf(
            "INSERT INTO %s.segment_events (source_id, message_id, type, event, name, category, user_id,"
            " anonymous_id, group_id, previous_id, \"timestamp\", original_timestamp, sent_at, received_at,"
            " payload%s) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15%s)",
            nsp, signature_column ? ", signature_verified" : "", signature_column ? ", $16" : ""),
        signature_column ? 16 : 15, insert_types);
    if (insert == nullptr) {
        elog(ERROR, "could not prepare the insert into segment_events: %s",
             SPI_result_code_string(SPI_result));
    }
    SPI_keepplan(probe);
    SPI_keepplan(insert);
    rule_plans.probe = probe;
    rule_plans.insert = insert;
    rule_plans.schema = schema;
    rule_plans.signature_column = signature_column;
    rule_plans.partitioned = partitioned;
}

}  // namespace

bool events_table_has_rules(Oid schema) {
    const Oid relid = get_relname_relid("segment_events", schema);
    if (!OidIsValid(relid)) {
        return false;
    }
    Relation rel = try_table_open(relid, AccessShareLock);
    if (rel == nullptr) {
        return false;
    }
    const bool has_rules = rel->rd_rules != nullptr;
    table_close(rel, AccessShareLock);
    return has_rules;
}

void insert_events_with_rules(Oid schema, PendingEvent *events, const int *order, int count, int64 *stored) {
    prepare(schema);
    *stored = 0;
    for (int k = 0; k < count; ++k) {
        PendingEvent &event = events[order[k]];
        event.id = 0;  // a rule may put the row anywhere: its id is not known here
        Datum key[3] = {Int32GetDatum(event.source_id), event.text_columns[0],
                        TimestampTzGetDatum(event.received_at)};
        int rc = SPI_execute_plan(rule_plans.probe, key, nullptr, false, 1);
        if (rc != (rule_plans.partitioned ? SPI_OK_INSERT_RETURNING : SPI_OK_SELECT)) {
            elog(ERROR, "probing segment_events failed: %s", SPI_result_code_string(rc));
        }
        if ((SPI_processed > 0) != rule_plans.partitioned) {
            event.outcome = EventOutcome::Duplicate;
            continue;
        }
        Datum values[16];
        char nulls[16];
        memset(nulls, ' ', sizeof nulls);
        values[0] = Int32GetDatum(event.source_id);
        for (int t = 0; t < 9; ++t) {
            values[1 + t] = event.text_columns[t];
            nulls[1 + t] = event.text_nulls[t] ? 'n' : ' ';
        }
        values[10] = TimestampTzGetDatum(event.timestamp);
        values[11] = TimestampTzGetDatum(event.original_timestamp);
        nulls[11] = event.original_timestamp_null ? 'n' : ' ';
        values[12] = TimestampTzGetDatum(event.sent_at);
        nulls[12] = event.sent_at_null ? 'n' : ' ';
        values[13] = TimestampTzGetDatum(event.received_at);
        values[14] = JsonbPGetDatum(event.payload);
        values[15] = BoolGetDatum(event.signature_verified);
        rc = SPI_execute_plan(rule_plans.insert, values, nulls, false, 0);
        if (rc < 0) {
            elog(ERROR, "insert into segment_events failed: %s", SPI_result_code_string(rc));
        }
        event.outcome = EventOutcome::Stored;
        ++*stored;
    }
}

void forget_rule_insert_plans() {
    rule_plans.stale = true;  // freed by the next prepare(), inside a transaction
}

}  // namespace segment_pg
