#!/usr/bin/env bash
# What the live event debugger costs at ingest, and what it saves when reading: in a throwaway Postgres 15
# cluster that this script creates and always removes, generated messages are stored through segment_ingest()
# (the worker's write path, COPY-like, in arrays of 500) in alternating rounds with and without the
# (source_id, id) index of segment_events that segment_recent() reads along, and with the NOTIFY on and off.
# Each round (into empty tables) reports time and WAL bytes per stored event; then the index's size per event, and
# segment_recent()'s time for a busy and for a quiet source of the filled table. It checks its answers (every
# message stored once, segment_recent returning the rows it should) before reporting anything.
#
# Usage: bash bench/debugger.sh [--rounds R] [--messages N] [--seed S]
# Environment: PG_BIN (default /usr/lib/postgresql/15/bin). Needs python3 (the generator) and the extension
# installed for that PG_BIN. Writes bench/results/debugger-<date>.txt.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
ROUNDS=3
MESSAGES=20000
SEED=20241129
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --messages) MESSAGES=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        -h | --help) sed -n '2,13p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done
for tool in initdb pg_ctl psql; do
    [ -x "$PG_BIN/$tool" ] || { echo "missing $PG_BIN/$tool: install postgresql-15" >&2; exit 1; }
done
if [ ! -f "$("$PG_BIN/pg_config" --sharedir)/extension/segment_webhook.control" ]; then
    echo "segment_webhook is not installed for $PG_BIN: run 'make install' first" >&2
    exit 1
fi

RUN_AS=()
if [ "$(id -u)" = 0 ]; then
    RUN_AS=(runuser -u postgres --)    # initdb refuses root
fi
WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/segment_bench.XXXXXX")
DATA_DIR=$WORK_DIR/data
SERVER_LOG=$WORK_DIR/server.log
SERVER_STARTED=0
cleanup() {
    local status=$?
    if [ "$SERVER_STARTED" = 1 ]; then
        [ "$status" != 0 ] && tail -n 30 "$SERVER_LOG" >&2
        (cd "$WORK_DIR" && "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$DATA_DIR" -m fast -w stop >/dev/null 2>&1) ||
            (cd "$WORK_DIR" && "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$DATA_DIR" -m immediate -w stop >/dev/null 2>&1) || true
    fi
    rm -rf "$WORK_DIR"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
[ "${#RUN_AS[@]}" -gt 0 ] && chown postgres: "$WORK_DIR"
cd "$WORK_DIR"
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${RUN_AS[@]}" "$PG_BIN/initdb" -D "$DATA_DIR" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
    --no-instructions >"$WORK_DIR/initdb.log" 2>&1 || { cat "$WORK_DIR/initdb.log" >&2; exit 1; }
"${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$DATA_DIR" -l "$SERVER_LOG" -w \
    -o "-p $PORT -k $WORK_DIR -c max_wal_size=4GB -c checkpoint_timeout=30min" start >/dev/null
SERVER_STARTED=1
psql_run() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$WORK_DIR" -p "$PORT" -U postgres -d postgres "$@"; }
psql_value() { psql_run -At -c "$1"; }

log "generating $MESSAGES messages (seed $SEED)"
python3 "$BENCH_DIR/gen_events.py" --count "$MESSAGES" --seed "$SEED" --retry-share 0 --out "$WORK_DIR/messages.jsonl"
[ "${#RUN_AS[@]}" -gt 0 ] && chown postgres: "$WORK_DIR/messages.jsonl"
psql_run <<SQL
CREATE EXTENSION segment_webhook;
SELECT segment_create_source('busy') IS NOT NULL AS busy, segment_create_source('quiet') IS NOT NULL AS quiet \gset
CREATE TABLE lines (n bigserial, message jsonb NOT NULL);
\copy lines (message) FROM '$WORK_DIR/messages.jsonl' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')
-- One round stores every message again under new messageIds (a suffix per round): arrays of 500, as the
-- worker's batches are.
CREATE FUNCTION store_round(round text) RETURNS bigint LANGUAGE sql AS \$\$
    SELECT sum(segment_ingest('busy', body))::bigint FROM (
        SELECT jsonb_agg(message || jsonb_build_object('messageId', (message ->> 'messageId') || '-' || round)) AS body
        FROM lines GROUP BY n / 500) arrays
\$\$;
SQL
RAW_BYTES=$(psql_value "SELECT avg(octet_length(message::text))::int FROM lines")

# One timed round into empty tables (so that every round and configuration writes the same pages), after a
# CHECKPOINT (so that each pays its full-page writes alike). Prints "µs_per_event wal_bytes_per_event".
round() {
    local name=$1 notify=$2
    psql_run -c 'TRUNCATE segment_events, segment_rejected'
    # The quiet source's one event is older than all of the busy source's.
    psql_run -c "SELECT segment_ingest('quiet', '{\"type\":\"track\",\"event\":\"E\",\"userId\":\"u\",\"messageId\":\"q\"}')" >/dev/null
    psql_run -c CHECKPOINT
    psql_run -At <<SQL
SET segment_webhook.notify = $notify;
SELECT pg_current_wal_insert_lsn() AS before, clock_timestamp() AS started \gset
SELECT store_round('$name') AS stored \gset
SELECT CASE WHEN :stored = $MESSAGES THEN '' ELSE 'STORED ' || :stored || ' OF $MESSAGES' END;
SELECT round(extract(epoch FROM clock_timestamp() - :'started') * 1e6 / :stored, 1) || ' '
       || round(pg_wal_lsn_diff(pg_current_wal_insert_lsn(), :'before') / :stored);
SQL
}

declare -A TIME WAL
for r in $(seq 1 "$ROUNDS"); do
    # The order alternates so that both configurations see the same machine at nearly the same time.
    if [ $((r % 2)) = 1 ]; then order="indexed plain notify"; else order="notify plain indexed"; fi
    for config in $order; do
        case $config in
            indexed) psql_run -c 'CREATE INDEX IF NOT EXISTS segment_events_source_id_id_idx ON segment_events (source_id, id)'; notify=off ;;
            plain) psql_run -c 'DROP INDEX IF EXISTS segment_events_source_id_id_idx'; notify=off ;;
            notify) psql_run -c 'CREATE INDEX IF NOT EXISTS segment_events_source_id_id_idx ON segment_events (source_id, id)'; notify=on ;;
        esac
        result=$(round "$config-$r" "$notify" | grep -v '^$')
        case $result in STORED*) echo "round $config-$r: $result" >&2; exit 1 ;; esac
        log "round $r, $config: $result (µs per event, WAL bytes per event)"
        TIME[$config]+="$(cut -d' ' -f1 <<<"$result") "
        WAL[$config]+="$(cut -d' ' -f2 <<<"$result") "
    done
done

psql_run -c 'CREATE INDEX IF NOT EXISTS segment_events_source_id_id_idx ON segment_events (source_id, id)'
psql_run -c 'ANALYZE segment_events, segment_rejected, segment_sources'
EVENTS=$(psql_value 'SELECT count(*) FROM segment_events')
INDEX_BYTES=$(psql_value "SELECT round(pg_relation_size('segment_events_source_id_id_idx')::numeric / $EVENTS, 1)")
UNIQUE_BYTES=$(psql_value "SELECT round(pg_relation_size('segment_events_source_id_message_id_key')::numeric / $EVENTS, 1)")
TABLE_BYTES=$(psql_value "SELECT round(pg_total_relation_size('segment_events')::numeric / $EVENTS, 1)")
# segment_recent: the median execution time (EXPLAIN ANALYZE, so without the client's round trips) of 21 calls.
psql_run <<'SQL'
CREATE FUNCTION time_recent(source text, expected bigint) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE
    plan json;
    rows bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM segment_recent(%L, 100)', source) INTO rows;
    IF rows <> expected THEN
        RAISE EXCEPTION 'segment_recent(%, 100) returned % rows, not %', source, rows, expected;
    END IF;
    EXECUTE format('EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM segment_recent(%L, 100)', source) INTO plan;
    RETURN (plan -> 0 ->> 'Execution Time')::numeric;
END
$$;
SQL
recent_ms() {
    psql_value "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY time_recent($1, $2))::numeric, 3)
                FROM generate_series(1, 21)"
}
BUSY_MS=$(recent_ms "'busy'" 100)
QUIET_MS=$(recent_ms "'quiet'" 1)
ALL_MS=$(recent_ms "NULL" 100)

median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
RESULTS_DIR="$BENCH_DIR/results"
mkdir -p "$RESULTS_DIR"
REPORT="$RESULTS_DIR/debugger-$(date -u +%Y-%m-%d).txt"
{
    echo "segment_webhook: the live event debugger's costs (bench/debugger.sh, $MESSAGES messages a round, $ROUNDS rounds)"
    echo "date:  $(date -u '+%Y-%m-%d %H:%M UTC'), nproc=$(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
    echo "load:  $(cut -d' ' -f1-3 /proc/loadavg) at the end; $("$PG_BIN/postgres" --version)"
    echo "raw JSON per message: $RAW_BYTES bytes; segment_ingest in arrays of 500 (the COPY-like path)"
    echo
    printf '%-44s %-26s %s\n' "configuration" "µs per event (each round)" "WAL bytes per event (each round)"
    printf '%-44s %-26s %s\n' "without the (source_id, id) index, no NOTIFY" "${TIME[plain]}" "${WAL[plain]}"
    printf '%-44s %-26s %s\n' "with the index (0.4), no NOTIFY" "${TIME[indexed]}" "${WAL[indexed]}"
    printf '%-44s %-26s %s\n' "with the index and one NOTIFY per call" "${TIME[notify]}" "${WAL[notify]}"
    echo
    echo "medians: without index $(median "${TIME[plain]}") µs, $(median "${WAL[plain]}") WAL bytes;" \
        "with $(median "${TIME[indexed]}") µs, $(median "${WAL[indexed]}") WAL bytes;" \
        "with NOTIFY $(median "${TIME[notify]}") µs, $(median "${WAL[notify]}") WAL bytes"
    echo "on disk per event ($EVENTS events): segment_events with TOAST and indexes $TABLE_BYTES bytes;" \
        "the (source_id, id) index $INDEX_BYTES bytes; the (source_id, message_id) unique index $UNIQUE_BYTES bytes"
    echo "segment_recent(…, 100), median execution time of 21 calls: busy source $BUSY_MS ms, quiet source (1 old row) $QUIET_MS ms," \
        "all sources $ALL_MS ms"
} | tee "$REPORT"
