#!/usr/bin/env bash
# The warehouse relations benchmark (segment_webhook 0.6), in two parts, each on throwaway Postgres 15 clusters
# that this script creates and always removes again:
#
#   ingest     live schema tracking on against off, same build: bench/ingest.sh's P1 (500-message arrays, 4
#              connections) and P2 (single messages, 64 connections) with segment_webhook.warehouse = on and
#              = off, one fresh cluster per run, alternating which goes first per round; every round's figures and
#              the ratio of the medians (on / off). After each run the source's discovered relations are read,
#              so an "on" run that discovered nothing (or an "off" run that did) fails the check.
#   dashboard  dashboard queries over generated events (10 million by default): the messages of
#              bench/gen_events.py (5% "Order Completed", timestamps spread over the 60 days before the run) are
#              loaded into segment_events of a source "web" (COPY into a staging table, then INSERT ... SELECT
#              with segment_parse, in chunks) through day partitions made for the days before the run, as the
#              maintenance would have made them; each closed day partition is reordered (segment_reorder_partition,
#              as the maintenance does once a day is over), segment_warehouse_sync() runs until it returns 0,
#              VACUUM ANALYZE;
#              then two queries over the views web.order_completed and web.pages are timed against the same
#              queries over plain tables holding the views' rows (CREATE TABLE ... AS SELECT * FROM the view),
#              alternating, median of warm runs; EXPLAIN (ANALYZE, BUFFERS, VERBOSE) of each goes to the report,
#              with the bytes on disk of segment_events per event.
#
# Usage: bash bench/warehouse.sh [options]
#   --part P              ingest, dashboard or all (default all)
#   --rounds R            rounds of the ingest comparison, one run of each setting per round (default 3)
#   --p1-messages N       messages for P1 per ingest run (default 200000, as bench/ingest.sh)
#   --p2-messages N       messages for P2 per ingest run (default 100000, as bench/ingest.sh)
#   --events N            events for the dashboard queries (default 10000000; e.g. 200000 for a quick try)
#   --order-share F       share of "Order Completed" track calls among the events (default 0.05)
#   --days D              events spread over the D days before the run (default 60; the queries read 30)
#   --query-runs K        timed runs of each query, after 2 warm-up runs (default 7)
#   --shared-buffers S    shared_buffers of the dashboard cluster (default 128MB, initdb's)
#   --cluster-defaults    time the queries with the cluster's defaults (parallel workers, JIT); the default
#                         is max_parallel_workers_per_gather = 0 and jit = off, as bench/sql_functions.sh
#   --seed S              generator seed (default 20240506)
#   --force               run the dashboard part even when the free disk looks too small
#   --no-save             do not write bench/results/warehouse-<date>.txt (warehouse-ingest-<date>.txt or
#                         warehouse-dashboard-<date>.txt with --part)
# Needs what bench/ingest.sh needs (--no-node: no Node.js), and segment_webhook 0.6 installed.
#   --no-reorder          leave the day partitions in arrival order (segment_webhook.reorder_partitions = off)
# Environment: PG_BIN (default /usr/lib/postgresql/15/bin), TMPDIR (where the clusters live).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PART=all
ROUNDS=3
P1_MESSAGES=200000
P2_MESSAGES=100000
EVENTS=10000000
ORDER_SHARE=0.05
DAYS=60
QUERY_RUNS=7
SHARED_BUFFERS=128MB
CLUSTER_DEFAULTS=0
SEED=20240506
FORCE=0
SAVE=1
REORDER=1
CHUNK=250000 # messages per generator run and per load transaction (the generator holds a chunk in memory)

while [ $# -gt 0 ]; do
    case "$1" in
        --part) PART=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --p1-messages) P1_MESSAGES=$2; shift 2 ;;
        --p2-messages) P2_MESSAGES=$2; shift 2 ;;
        --events) EVENTS=$2; shift 2 ;;
        --order-share) ORDER_SHARE=$2; shift 2 ;;
        --days) DAYS=$2; shift 2 ;;
        --query-runs) QUERY_RUNS=$2; shift 2 ;;
        --shared-buffers) SHARED_BUFFERS=$2; shift 2 ;;
        --cluster-defaults) CLUSTER_DEFAULTS=1; shift ;;
        --seed) SEED=$2; shift 2 ;;
        --force) FORCE=1; shift ;;
        --no-save) SAVE=0; shift ;;
        --no-reorder) REORDER=0; shift ;;
        -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { print }' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done
case "$PART" in all | ingest | dashboard) ;; *) echo "--part must be ingest, dashboard or all" >&2; exit 2 ;; esac
[ "$EVENTS" -ge 1000 ] || { echo "--events must be at least 1000" >&2; exit 2; }

for tool in initdb pg_ctl psql pg_config; do
    [ -x "$PG_BIN/$tool" ] || { echo "missing $PG_BIN/$tool: install postgresql-15" >&2; exit 1; }
done
command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 1; }
SHAREDIR=$("$PG_BIN/pg_config" --sharedir)
LIBRARY=$("$PG_BIN/pg_config" --pkglibdir)/segment_webhook.so
DEFAULT_VERSION=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" "$SHAREDIR/extension/segment_webhook.control" 2>/dev/null || true)
if [ -z "$DEFAULT_VERSION" ] || [ ! -f "$LIBRARY" ]; then
    echo "segment_webhook is not installed: run 'make install' first" >&2
    exit 1
fi
library_fingerprint() { printf '%s, sha256 %s' "$(date -u -r "$LIBRARY" '+%Y-%m-%d %H:%M:%S UTC')" "$(sha256sum "$LIBRARY" | cut -c1-16)"; }
LIBRARY_AT_START=$(library_fingerprint)

RUN_AS=()
if [ "$(id -u)" = 0 ]; then
    RUN_AS=(runuser -u postgres --)
fi
WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/segment_warehouse_bench.XXXXXX")
DATA_DIR=$WORK_DIR/data
SERVER_LOG=$WORK_DIR/server.log
SERVER_STARTED=0
cleanup() {
    local status=$?
    if [ "$SERVER_STARTED" = 1 ]; then
        if [ "$status" != 0 ] && [ -f "$SERVER_LOG" ]; then
            echo "--- last lines of the server log ---" >&2
            tail -n 30 "$SERVER_LOG" >&2 || true
        fi
        (cd "$WORK_DIR" && "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$DATA_DIR" -m fast -w stop >/dev/null 2>&1) ||
            (cd "$WORK_DIR" && "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$DATA_DIR" -m immediate -w stop >/dev/null 2>&1) || true
    fi
    rm -rf "$WORK_DIR"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
[ "${#RUN_AS[@]}" -eq 0 ] || chown postgres: "$WORK_DIR"
cd "$WORK_DIR"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
REPORT=(python3 "$BENCH_DIR/warehouse_report.py")
SECTIONS=$WORK_DIR/sections
mkdir -p "$SECTIONS"
START_TIME=$(date +%s)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
FAILED=0

# =========================================================================================================
# Part 1: ingest with live schema tracking on and off (bench/ingest.sh, one fresh cluster per run).
# =========================================================================================================
# Right after the last scenario: how far the discovery had examined the events (segment_warehouse_progress)
# against the highest event id; then, 3 seconds later (a worker that was behind catches up with the last
# scenario's events), what it left in the source's schema: relations, columns, whether "Order Completed" got its
# view with a typed revenue column, and the latest first_seen. ingest.sh's source is named "bench". Events
# that a scenario's TRUNCATE removed before the worker reached them are never examined.
DISCOVERY_SQL="SELECT coalesce((SELECT examined_to FROM segment_warehouse_progress), 0), (SELECT coalesce(max(id), 0) FROM segment_events);
DO \$\$ BEGIN PERFORM pg_sleep(3); END \$\$;
SELECT count(DISTINCT relation), count(*), count(*) FILTER (WHERE relation = 'order_completed'),
    coalesce(replace(max(column_type) FILTER (WHERE relation = 'order_completed' AND column_name = 'revenue'), ' ', '_'), '-'),
    coalesce(to_char(max(first_seen) AT TIME ZONE 'UTC', 'HH24:MI:SS'), '-')
    FROM segment_warehouse_schema('bench')"
run_ingest() { # round setting
    local round=$1 setting=$2 output
    log "ingest round $round: segment_webhook.warehouse = $setting"
    output=$(bash "$BENCH_DIR/ingest.sh" --no-node --no-curves --no-profile --no-save --rounds 1 \
        --p1-messages "$P1_MESSAGES" --p2-messages "$P2_MESSAGES" --set "segment_webhook.warehouse=$setting" \
        --after-rounds "$DISCOVERY_SQL" 2>"$WORK_DIR/ingest.log") ||
        { tail -n 20 "$WORK_DIR/ingest.log" >&2; echo "bench/ingest.sh failed" >&2; return 1; }
    grep -q 'all ok' <<<"$output" || { echo "$output" >&2; echo "bench/ingest.sh's checks failed" >&2; return 1; }
    local p1 p2 discovery shown library
    p1=$(awk '/P1 webhook, 500-message arrays/ { print $5, $8, $10 }' <<<"$output")
    p2=$(awk '/P2 webhook, single messages/ { print $5, $8, $10 }' <<<"$output")
    discovery=$(sed -n 's/^after rounds: //p' <<<"$output" | tr -d ' ' | tr '|\n' '  ')
    shown=$(sed -n 's/^set: .*shown now: \(.*\))$/\1/p' <<<"$output")
    library=$(sed -n 's/^library: .*sha256 \([0-9a-f]*\).*/\1/p' <<<"$output")
    echo "$round $setting $shown $p1 $p2 $discovery $library" >>"$WORK_DIR/ingest_figures"
    log "  P1 $p1 / P2 $p2 (events/s, p99 ms, CPU us/ev); discovered: $discovery"
    [ -n "${INGEST_HEADER:-}" ] || INGEST_HEADER=$(sed -n '/^postgres:/p; /^library:/p; /^settings:/p; /^data:/p; /^load:.*P1 =/p' <<<"$output")
}
if [ "$PART" != dashboard ]; then
    : >"$WORK_DIR/ingest_figures"
    INGEST_LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
    INGEST_STARTED=$(date -u '+%H:%M')
    for round in $(seq 1 "$ROUNDS"); do
        if [ $((round % 2)) = 1 ]; then order=(on off); else order=(off on); fi
        for setting in "${order[@]}"; do
            run_ingest "$round" "$setting"
        done
    done
    {
        echo "ingest with live schema tracking on and off ($INGEST_STARTED-$(date -u '+%H:%M') UTC; load average $INGEST_LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after)"
        echo "  bench/ingest.sh --no-node --no-curves --no-profile --rounds 1 --p1-messages $P1_MESSAGES --p2-messages $P2_MESSAGES --set segment_webhook.warehouse=on|off, one fresh cluster per run, $ROUNDS rounds, the order alternating"
        sed 's/^/  /' <<<"$INGEST_HEADER"
        echo
        "${REPORT[@]}" ingest "$WORK_DIR/ingest_figures"
    } >"$SECTIONS/1_ingest.txt" || FAILED=1
fi

# =========================================================================================================
# Part 2: dashboard queries over the views against plain tables.
# =========================================================================================================
if [ "$PART" != ingest ]; then
    # Disk: segment_events takes about 1.6 kB per event with its indexes, the plain copies about 0.5 kB per
    # event, the staging table and the chunk file 2.5 kB per chunk message, WAL up to max_wal_size (4GB) and more.
    NEEDED=$((EVENTS * 2300 + CHUNK * 2500 + 6 * 1024 * 1024 * 1024))
    AVAILABLE=$(df --output=avail -B1 "$WORK_DIR" | tail -n 1 | tr -d ' ')
    DISK_NOTE="disk: $((AVAILABLE / 1024 / 1024 / 1024)) GiB free in $(df --output=target "$WORK_DIR" | tail -n 1), about $((NEEDED / 1024 / 1024 / 1024)) GiB needed for $EVENTS events"
    log "$DISK_NOTE"
    if [ "$AVAILABLE" -lt "$NEEDED" ]; then
        echo "NOT ENOUGH DISK for $EVENTS events: $((AVAILABLE / 1024 / 1024 / 1024)) GiB free in $WORK_DIR, about $((NEEDED / 1024 / 1024 / 1024)) GiB needed." >&2
        echo "Set TMPDIR to a larger file system, pass a smaller --events, or --force to try anyway." >&2
        [ "$FORCE" = 1 ] || exit 1
    fi

    PGPORT_BENCH=$(free_port)
    log "initdb in $DATA_DIR, Postgres on port $PGPORT_BENCH"
    "${RUN_AS[@]}" "$PG_BIN/initdb" -D "$DATA_DIR" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
        --no-instructions >"$WORK_DIR/initdb.log" 2>&1 || { cat "$WORK_DIR/initdb.log" >&2; exit 1; }
    # The library is preloaded as a user would have it, with automatic discovery off: discovery runs only through
    # segment_warehouse_sync() after the load, so that it is timed on its own. The rest is for a bulk load.
    cat >>"$DATA_DIR/postgresql.conf" <<CONF

# bench/warehouse.sh
shared_preload_libraries = 'segment_webhook'
segment_webhook.port = $(free_port)
segment_webhook.warehouse = off
segment_webhook.reorder_partitions = off
shared_buffers = '$SHARED_BUFFERS'
max_wal_size = '4GB'
checkpoint_timeout = '30min'
CONF
    "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$DATA_DIR" -l "$SERVER_LOG" -w -o "-p $PGPORT_BENCH -k $WORK_DIR" start >/dev/null
    SERVER_STARTED=1
    psql_run() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$WORK_DIR" -p "$PGPORT_BENCH" -U postgres -d postgres "$@"; }
    psql_value() { psql_run -At -c "$1"; }
    psql_run -c 'CREATE EXTENSION segment_webhook'
    psql_value "SELECT segment_create_source('web')" >/dev/null
    SOURCE_ID=$(psql_value "SELECT id FROM segment_sources WHERE name = 'web'")
    [ "$(psql_value "SELECT count(*) FROM pg_views WHERE schemaname = 'web' AND viewname = 'pages'")" = 1 ] ||
        { echo "segment_create_source('web') made no view web.pages: is segment_webhook 0.6 installed?" >&2; exit 1; }
    [ "$(psql_value "SELECT count(*) FROM pg_proc WHERE proname = 'segment_reorder_partition'")" = 1 ] ||
        { echo "no segment_reorder_partition(): is segment_webhook 0.6 installed?" >&2; exit 1; }

    # ---------------------------------------------------------------------------------------------------
    # Data: CHUNK messages per generator run (its own seed and its slice of the time span), each COPYed into an
    # unlogged staging table, then stored with segment_parse's columns the way the worker stores them:
    # received_at is the message's receivedAt (what the worker would have recorded had the events arrived
    # live), "timestamp" segment_parse's skew-corrected timestamp.
    # ---------------------------------------------------------------------------------------------------
    SPAN_SECONDS=$((DAYS * 86400))
    START_EPOCH=$(($(date +%s) - SPAN_SECONDS))
    CHUNKS=$(((EVENTS + CHUNK - 1) / CHUNK))
    # The day partitions of the days before the run, made as segment_create_partitions() makes them (it makes
    # today's and the days ahead): events received live land in their day's partition, not the default one.
    psql_run <<SQL
DO \$\$
DECLARE
    day timestamptz;
    name text;
BEGIN
    FOR day IN SELECT generate_series(date_trunc('day', to_timestamp($START_EPOCH) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
                                      date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '1 day',
                                      interval '1 day') LOOP
        name := 'segment_events_p' || to_char(day AT TIME ZONE 'UTC', 'YYYYMMDD');
        CONTINUE WHEN to_regclass(name) IS NOT NULL;
        EXECUTE format('CREATE TABLE %I (LIKE segment_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION)', name);
        EXECUTE format('CREATE INDEX ON %I (id)', name);
        EXECUTE format('ALTER TABLE segment_events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', name, day, day + interval '1 day');
    END LOOP;
END
\$\$;
SQL
    psql_run -c 'CREATE UNLOGGED TABLE staging (line text NOT NULL)'
    GEN_SECONDS=0
    LOAD_SECONDS=0
    log "generating and loading $EVENTS events in $CHUNKS chunks (timestamps from $(date -u -d "@$START_EPOCH" '+%Y-%m-%d %H:%M') UTC over $DAYS days)"
    for chunk in $(seq 0 $((CHUNKS - 1))); do
        count=$((chunk == CHUNKS - 1 ? EVENTS - chunk * CHUNK : CHUNK))
        chunk_start=$((START_EPOCH + SPAN_SECONDS * chunk / CHUNKS))
        chunk_span=$((START_EPOCH + SPAN_SECONDS * (chunk + 1) / CHUNKS - chunk_start))
        t0=$(date +%s.%N)
        python3 "$BENCH_DIR/gen_events.py" --count "$count" --seed $((SEED + chunk)) \
            --order-completed-share "$ORDER_SHARE" --start "$(date -u -d "@$chunk_start" '+%Y-%m-%dT%H:%M:%SZ')" \
            --span-seconds "$chunk_span" --out "$WORK_DIR/chunk.jsonl"
        chmod a+r "$WORK_DIR/chunk.jsonl"
        t1=$(date +%s.%N)
        psql_run <<SQL
COPY staging FROM '$WORK_DIR/chunk.jsonl' WITH (FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02');
INSERT INTO segment_events (source_id, message_id, type, event, name, category, user_id, anonymous_id, group_id,
                            previous_id, "timestamp", original_timestamp, sent_at, received_at, payload)
SELECT $SOURCE_ID, p.message_id, p.type, p.event, p.name, p.category, p.user_id, p.anonymous_id, p.group_id,
       p.previous_id, coalesce(p."timestamp", p.received_at, p.original_timestamp), p.original_timestamp, p.sent_at,
       coalesce(p.received_at, p.original_timestamp), s.msg
FROM (SELECT line::jsonb AS msg FROM staging) AS s CROSS JOIN LATERAL segment_parse(s.msg) AS p;
TRUNCATE staging;
SQL
        t2=$(date +%s.%N)
        rm -f "$WORK_DIR/chunk.jsonl"
        GEN_SECONDS=$(python3 -c "print($GEN_SECONDS + $t1 - $t0)")
        LOAD_SECONDS=$(python3 -c "print($LOAD_SECONDS + $t2 - $t1)")
        if [ $((chunk % 4)) = 3 ] || [ "$chunk" = $((CHUNKS - 1)) ]; then
            log "  $((chunk * CHUNK + count)) events loaded (generator ${GEN_SECONDS%.*} s, database ${LOAD_SECONDS%.*} s so far)"
        fi
    done
    psql_run -c 'DROP TABLE staging' -c 'CHECKPOINT'
    STORED=$(psql_value 'SELECT count(*) FROM segment_events')
    [ "$STORED" = "$EVENTS" ] || { echo "segment_events holds $STORED rows, expected $EVENTS" >&2; exit 1; }
    IN_DEFAULT=$(psql_value 'SELECT count(*) FROM segment_events_default')

    # What the maintenance does once each day is over: one closed day partition at a time, each in its own
    # transaction.
    REORDERED=0
    REORDER_SECONDS=0
    if [ "$REORDER" = 1 ]; then
        log "reordering the closed day partitions"
        t0=$(date +%s.%N)
        for partition in $(psql_value "SELECT p.partition FROM segment_event_partitions() p WHERE p.to_time <= now() - interval '1 hour' ORDER BY p.from_time DESC"); do
            [ "$(psql_value "SELECT segment_reorder_partition('$partition')")" = t ] && REORDERED=$((REORDERED + 1))
        done
        REORDER_SECONDS=$(python3 -c "print($(date +%s.%N) - $t0)")
        REORDERED_ROWS=$(psql_value "SELECT count(*) FROM segment_events e WHERE e.tableoid IN (SELECT k.conrelid FROM pg_constraint k WHERE k.conname = 'segment_events_reordered')")
        log "  $REORDERED partitions ($REORDERED_ROWS events) in ${REORDER_SECONDS%.*} s"
    fi

    log "segment_warehouse_sync() until it returns 0"
    t0=$(date +%s.%N)
    SYNC_PASSES=0
    SYNC_EXAMINED=0
    SYNC_DONE=0
    # 20 calls per session, each its own transaction: a session remembers the message shapes its committed
    # passes recorded, as the warehouse worker's one long session does.
    while [ "$SYNC_DONE" = 0 ]; do
        for examined in $(for i in $(seq 1 20); do echo 'SELECT segment_warehouse_sync();'; done | psql_run -At); do
            SYNC_PASSES=$((SYNC_PASSES + 1))
            if [ "$examined" = 0 ]; then SYNC_DONE=1; break; fi
            SYNC_EXAMINED=$((SYNC_EXAMINED + examined))
        done
        log "  $SYNC_PASSES passes, $SYNC_EXAMINED events examined"
    done
    SYNC_SECONDS=$(python3 -c "print($(date +%s.%N) - $t0)")
    log "  $SYNC_EXAMINED events examined in $SYNC_PASSES passes, ${SYNC_SECONDS%.*} s"
    log "VACUUM ANALYZE segment_events"
    t0=$(date +%s.%N)
    psql_run -c 'VACUUM ANALYZE segment_events'
    VACUUM_SECONDS=$(python3 -c "print($(date +%s.%N) - $t0)")

    # The plain side: the views' rows and columns as ordinary tables.
    log "plain copies of web.order_completed and web.pages"
    psql_run <<'SQL'
CREATE TABLE plain_order_completed AS SELECT * FROM web.order_completed;
CREATE TABLE plain_pages AS SELECT * FROM web.pages;
VACUUM ANALYZE plain_order_completed;
VACUUM ANALYZE plain_pages;
SQL

    # Sizes and shape. pg_table_size counts the main fork, FSM, VM and TOAST (with its index).
    psql_run -At -F ' ' >"$WORK_DIR/sizes.txt" <<'SQL'
SELECT 'heap', sum(pg_relation_size(relid)) FROM pg_partition_tree('segment_events') WHERE isleaf;
SELECT 'fsm_vm', sum(pg_relation_size(relid, 'fsm') + pg_relation_size(relid, 'vm')) FROM pg_partition_tree('segment_events') WHERE isleaf;
SELECT 'toast', sum(coalesce(pg_total_relation_size(c.reltoastrelid), 0)) FROM pg_partition_tree('segment_events') t JOIN pg_class c ON c.oid = t.relid WHERE t.isleaf;
SELECT 'index:' || indexrelid::regclass, (SELECT sum(pg_relation_size(t.relid)) FROM pg_partition_tree(indexrelid) t) FROM pg_index WHERE indrelid = 'segment_events'::regclass ORDER BY 1;
SELECT 'index:' || kind || ' (' || count(*) || ')', sum(size)
FROM (SELECT regexp_replace(pg_get_indexdef(i.indexrelid), '.* USING ', 'each partition''s own ') AS kind, pg_relation_size(i.indexrelid) AS size
      FROM pg_partition_tree('segment_events') t JOIN pg_index i ON i.indrelid = t.relid
      WHERE t.isleaf AND NOT EXISTS (SELECT FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)) AS own
GROUP BY kind ORDER BY 1;
SELECT 'total', sum(pg_total_relation_size(relid)) FROM pg_partition_tree('segment_events') WHERE isleaf;
SELECT 'rows', count(*) FROM segment_events;
SELECT 'payload_avg', avg(pg_column_size(payload))::bigint FROM segment_events;
SELECT 'plain:' || relname, pg_total_relation_size(oid) FROM pg_class WHERE relname IN ('plain_order_completed', 'plain_pages') ORDER BY 1;
SELECT 'plainrows:' || 'plain_order_completed', count(*) FROM plain_order_completed;
SELECT 'plainrows:' || 'plain_pages', count(*) FROM plain_pages;
SELECT 'columns:' || relname, relnatts FROM pg_class WHERE relname IN ('plain_order_completed', 'plain_pages') ORDER BY 1;
SELECT 'relations', count(DISTINCT relation) FROM segment_warehouse_schema('web');
SELECT 'schema_columns', count(*) FROM segment_warehouse_schema('web');
SQL

    # ---------------------------------------------------------------------------------------------------
    # The queries (view against plain table, same text otherwise), checked for equal answers in one snapshot
    # and one now(), then timed: 2 warm-up runs, then QUERY_RUNS rounds, order reversed every other round.
    # ---------------------------------------------------------------------------------------------------
    QUERIES=$WORK_DIR/queries.tsv
    {
        printf 'a\tview\tSELECT date_trunc('"'"'day'"'"', "timestamp"), count(*) FROM web.order_completed WHERE "timestamp" > now() - interval '"'"'30 days'"'"' GROUP BY 1\n'
        printf 'a\tplain\tSELECT date_trunc('"'"'day'"'"', "timestamp"), count(*) FROM plain_order_completed WHERE "timestamp" > now() - interval '"'"'30 days'"'"' GROUP BY 1\n'
        printf 'b\tview\tSELECT context_campaign_source, count(*), count(DISTINCT url) FROM web.pages WHERE "timestamp" > now() - interval '"'"'30 days'"'"' GROUP BY 1\n'
        printf 'b\tplain\tSELECT context_campaign_source, count(*), count(DISTINCT url) FROM plain_pages WHERE "timestamp" > now() - interval '"'"'30 days'"'"' GROUP BY 1\n'
        printf 'b0\tview\tSELECT count(*) FROM web.pages WHERE "timestamp" > now() - interval '"'"'30 days'"'"'\n'
        printf 'b0\tplain\tSELECT count(*) FROM plain_pages WHERE "timestamp" > now() - interval '"'"'30 days'"'"'\n'
        printf 'b1\tview\tSELECT context_campaign_source, count(*), count(url) FROM web.pages WHERE "timestamp" > now() - interval '"'"'30 days'"'"' GROUP BY 1\n'
        printf 'b1\tplain\tSELECT context_campaign_source, count(*), count(url) FROM plain_pages WHERE "timestamp" > now() - interval '"'"'30 days'"'"' GROUP BY 1\n'
    } >"$QUERIES"
    SESSION_SETTINGS='SET max_parallel_workers_per_gather = 0; SET jit = off;'
    [ "$CLUSTER_DEFAULTS" = 0 ] || SESSION_SETTINGS=
    query_of() { awk -F '\t' -v q="$1" -v s="$2" '$1 == q && $2 == s { print $3 }' "$QUERIES"; }
    : >"$WORK_DIR/checks.txt"
    for q in a b b0 b1; do
        view_query=$(query_of "$q" view)
        plain_query=$(query_of "$q" plain)
        differing=$(printf '%s\n' 'BEGIN ISOLATION LEVEL REPEATABLE READ;' \
            "SELECT count(*) FROM (($view_query) EXCEPT ALL ($plain_query)) AS d;" \
            "SELECT count(*) FROM (($plain_query) EXCEPT ALL ($view_query)) AS d;" \
            "SELECT count(*) FROM ($view_query) AS r;" 'COMMIT;' | psql_run -At | paste -sd ' ')
        echo "$q $differing" >>"$WORK_DIR/checks.txt"
        set -- $differing
        [ "$1" = 0 ] && [ "$2" = 0 ] || { echo "query $q: the view and the plain table answer differently ($differing)" >&2; FAILED=1; }
    done
    psql_run -At -F ' ' >>"$WORK_DIR/checks.txt" <<'SQL'
SELECT 'window_share order_completed', count(*) FILTER (WHERE "timestamp" > now() - interval '30 days'), count(*) FROM plain_order_completed;
SELECT 'window_share pages', count(*) FILTER (WHERE "timestamp" > now() - interval '30 days'), count(*) FROM plain_pages;
SELECT 'timestamps', min("timestamp"), max("timestamp") FROM segment_events;
SQL

    TIMING=$WORK_DIR/timing.sql
    {
        printf '%s\n' '\pset tuples_only on' '\pset format unaligned' "$SESSION_SETTINGS" '\o /dev/null' '\timing on'
        for run in $(seq -1 "$QUERY_RUNS"); do # runs -1 and 0 warm up
            for q in a b b0 b1; do
                if [ $((run % 2)) = 0 ]; then sides="view plain"; else sides="plain view"; fi
                for side in $sides; do
                    printf '\\echo @@ %s %s %s\n%s;\n' "$run" "$q" "$side" "$(query_of "$q" "$side")"
                done
            done
        done
        # The plans, in the same warm session right after the timed runs.
        printf '%s\n' '\timing off' "\\o $WORK_DIR/explain.txt"
        for q in a b b0 b1; do
            for side in view plain; do
                # \qecho's quoted argument: a quote inside is written twice.
                printf "\\\\qecho '--- query %s, %s: %s'\\nEXPLAIN (ANALYZE, BUFFERS, VERBOSE) %s;\\n\\\\qecho\\n" \
                    "$q" "$side" "$(query_of "$q" "$side" | sed "s/'/''/g")" "$(query_of "$q" "$side")"
            done
        done
    } >"$TIMING"
    DASHBOARD_LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
    log "timing: 2 warm-up runs + $QUERY_RUNS runs of each query, then EXPLAIN (ANALYZE, BUFFERS, VERBOSE) of each"
    psql_run -f "$TIMING" >"$WORK_DIR/timing.out"
    DASHBOARD_LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
    psql_value "SELECT pg_get_viewdef('web.order_completed')" >"$WORK_DIR/viewdef_order_completed.txt"
    psql_value "SELECT pg_get_viewdef('web.pages')" >"$WORK_DIR/viewdef_pages.txt"
    {
        echo "dashboard queries: views against plain tables ($EVENTS events)"
        echo "  data:      bench/gen_events.py --order-completed-share $ORDER_SHARE, $CHUNKS runs of up to $CHUNK messages (seeds $SEED..$((SEED + CHUNKS - 1))), timestamps over the $DAYS days before the run; source 'web' (schema web)"
        echo "  load:      COPY into an unlogged staging table, INSERT INTO segment_events ... SELECT segment_parse(line::jsonb), one transaction per chunk: generator $(printf '%.0f' "$GEN_SECONDS") s, database $(printf '%.0f' "$LOAD_SECONDS") s ($(python3 -c "print(round($EVENTS / $LOAD_SECONDS))") events/s)"
        echo "  layout:    $(psql_value "SELECT count(*) FROM segment_event_partitions()") day partitions (those of the days before the run made by this script, as the maintenance makes them), $IN_DEFAULT events in the default partition; $([ "$REORDER" = 1 ] && echo "$REORDERED closed day partitions ($REORDERED_ROWS events) reordered by segment_reorder_partition() after the load, one transaction each: $(printf '%.0f' "$REORDER_SECONDS") s ($(python3 -c "print(round($REORDERED_ROWS / max($REORDER_SECONDS, 0.001)))") events/s)" || echo "not reordered (--no-reorder)")"
        echo "  discovery: segment_warehouse_sync() until it returned 0, 20 calls per session: $SYNC_EXAMINED events examined in $SYNC_PASSES calls, $(printf '%.1f' "$SYNC_SECONDS") s ($(python3 -c "print(round($SYNC_EXAMINED / max($SYNC_SECONDS, 0.001)))") events/s); then VACUUM ANALYZE segment_events $(printf '%.0f' "$VACUUM_SECONDS") s"
        echo "  cluster:   initdb defaults plus shared_buffers $(psql_value 'SHOW shared_buffers'), work_mem $(psql_value 'SHOW work_mem'), max_wal_size 4GB, checkpoint_timeout 30min; segment_webhook preloaded, segment_webhook.warehouse = off (discovery only through segment_warehouse_sync()), segment_webhook.reorder_partitions = off (reordered by this script)"
        if [ -n "$SESSION_SETTINGS" ]; then
            echo "  session:   $SESSION_SETTINGS (both sides alike; parallel plans would split a query over the two cores the machine shares)"
        else
            echo "  session:   the cluster's defaults: max_parallel_workers_per_gather $(psql_value 'SHOW max_parallel_workers_per_gather'), jit $(psql_value 'SHOW jit')"
        fi
        echo "  $DISK_NOTE"
        echo "  load average $DASHBOARD_LOAD_BEFORE before timing, $DASHBOARD_LOAD_AFTER after"
        echo
        "${REPORT[@]}" dashboard "$WORK_DIR/sizes.txt" "$WORK_DIR/checks.txt" "$WORK_DIR/timing.out" "$QUERIES"
        echo
        echo "EXPLAIN (ANALYZE, BUFFERS, VERBOSE), warm, after the timed runs:"
        echo
        cat "$WORK_DIR/explain.txt"
        echo "view definitions (pg_get_viewdef):"
        echo "--- web.order_completed"
        cat "$WORK_DIR/viewdef_order_completed.txt"
        echo "--- web.pages"
        cat "$WORK_DIR/viewdef_pages.txt"
    } >"$SECTIONS/2_dashboard.txt" || FAILED=1
fi

# =========================================================================================================
# Report
# =========================================================================================================
RESULT_TEXT=$(
    echo "segment_webhook warehouse relations benchmark (bench/warehouse.sh --part $PART)"
    echo "date:        $(date -u '+%Y-%m-%d %H:%M:%S UTC'), run took $(($(date +%s) - START_TIME)) s"
    echo "host:        nproc=$(nproc), CPU $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), memory $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)"
    echo "load:        load average $LOAD_BEFORE at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
    echo "postgres:    $("$PG_BIN/postgres" --version)"
    echo "extension:   segment_webhook $DEFAULT_VERSION, library $LIBRARY built $LIBRARY_AT_START"
    if [ "$(library_fingerprint)" != "$LIBRARY_AT_START" ]; then
        echo "note:        the installed library was replaced during the run (now built $(library_fingerprint))"
    fi
    for section in "$SECTIONS"/*.txt; do
        echo
        cat "$section"
    done
)
echo "$RESULT_TEXT"
if [ "$SAVE" = 1 ]; then
    mkdir -p "$BENCH_DIR/results"
    RESULT_FILE=$BENCH_DIR/results/warehouse-$([ "$PART" = all ] || echo "$PART-")$(date -u +%Y-%m-%d).txt
    echo "$RESULT_TEXT" >"$RESULT_FILE"
    log "results written to $RESULT_FILE"
fi
if [ "$FAILED" = 1 ] || grep -q 'CHECK FAILED' <<<"$RESULT_TEXT"; then
    log "a check failed (see above)"
    exit 1
fi
