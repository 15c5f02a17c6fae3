#!/usr/bin/env bash
# Bytes on disk and of WAL per stored event, next to the size of the JSON received, for several layouts side by
# side in one throwaway Postgres 15 cluster (one database each, loaded one after the other with the same
# messages): the 0.4 table (unpartitioned, unique (source_id, message_id)), and the partitioned table of 0.5 with
# payload compressed by lz4 (the default) and by pglz, and with lz4 at a lower toast_tuple_target (compression is
# only tried for rows over it: 2032 bytes by default, more than most events). Messages go in through
# segment_ingest() in arrays of 500, as the HTTP worker writes them. The cluster is always removed again.
#
# Usage: bash bench/disk.sh [--messages N] [--seed S] [--no-save]
# Environment: PG_BIN (default /usr/lib/postgresql/15/bin). Writes bench/results/disk-<date>.txt unless --no-save.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
MESSAGES=200000
SEED=20240506
SAVE=1
while [ $# -gt 0 ]; do
    case "$1" in
        --messages) MESSAGES=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --no-save) SAVE=0; shift ;;
        -h | --help) sed -n '2,11p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done
[ -f "$("$PG_BIN/pg_config" --sharedir)/extension/segment_webhook--0.5.sql" ] ||
    { echo "segment_webhook 0.5 is not installed: run 'make install' first" >&2; exit 1; }

RUN_AS=()
[ "$(id -u)" = 0 ] && RUN_AS=(runuser -u postgres --)
WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/segment_disk.XXXXXX")
DATA_DIR=$WORK_DIR/data
SERVER_STARTED=0
cleanup() {
    local status=$?
    if [ "$SERVER_STARTED" = 1 ]; then
        [ "$status" != 0 ] && tail -n 30 "$WORK_DIR/server.log" >&2
        "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$DATA_DIR" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK_DIR"
    exit "$status"
}
trap cleanup EXIT
[ "${#RUN_AS[@]}" -gt 0 ] && chown postgres: "$WORK_DIR"
cd "$WORK_DIR"
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${RUN_AS[@]}" "$PG_BIN/initdb" -D "$DATA_DIR" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
    --no-instructions >"$WORK_DIR/initdb.log" 2>&1 || { cat "$WORK_DIR/initdb.log" >&2; exit 1; }
# No worker: the day partitions are made by segment_run_maintenance() below, the rest is initdb's default.
"${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$DATA_DIR" -l "$WORK_DIR/server.log" -w -o "-p $PORT -k $WORK_DIR" start >/dev/null
SERVER_STARTED=1
psql_db() { local db=$1; shift; "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$WORK_DIR" -p "$PORT" -U postgres -d "$db" "$@"; }

log "generating $MESSAGES messages (seed $SEED)"
python3 "$BENCH_DIR/gen_events.py" --count "$MESSAGES" --seed "$SEED" --retry-share 0 --out "$WORK_DIR/messages.jsonl"
# One SQL file: segment_ingest() of arrays of 500 messages, as the worker's batches.
python3 - "$WORK_DIR/messages.jsonl" "$WORK_DIR/load.sql" <<'PY'
import sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
with open(sys.argv[2], "w", encoding="utf-8") as out:
    for start in range(0, len(lines), 500):
        body = "[" + ",".join(lines[start:start + 500]) + "]"
        out.write("SELECT segment_ingest('bench', $body$" + body + "$body$);\n")
PY
RAW_BYTES=$(python3 -c 'import sys; print(sum(len(l.rstrip(b"\n")) for l in open(sys.argv[1], "rb")))' "$WORK_DIR/messages.jsonl")

# layout NAME SETUP_SQL: a database with the extension as SETUP_SQL leaves it, loaded, measured.
RESULTS=$WORK_DIR/results.txt
layout() {
    local name=$1 setup=$2
    log "layout $name"
    psql_db postgres -c "CREATE DATABASE $name"
    psql_db "$name" -c "$setup" -c "SELECT segment_create_source('bench')" >/dev/null
    psql_db "$name" -c 'CHECKPOINT'
    local wal_before
    wal_before=$(psql_db "$name" -At -c "SELECT pg_current_wal_insert_lsn()")
    local started ended
    started=$(date +%s.%N)
    psql_db "$name" -f "$WORK_DIR/load.sql" >/dev/null
    ended=$(date +%s.%N)
    psql_db "$name" -At -F ' ' -c "
        WITH parts AS (
            SELECT c.oid, c.reltoastrelid FROM pg_class c
            WHERE c.oid = 'segment_events'::regclass AND c.relkind = 'r'
               OR c.oid IN (SELECT relid FROM pg_partition_tree('segment_events') WHERE isleaf)
        ), sizes AS (
            SELECT sum(pg_relation_size(p.oid)) AS heap,
                   sum(CASE WHEN p.reltoastrelid <> 0 THEN pg_total_relation_size(p.reltoastrelid) ELSE 0 END) AS toast,
                   sum(pg_indexes_size(p.oid)) AS indexes
            FROM parts p
        )
        SELECT '$name', (SELECT count(*) FROM segment_events), $RAW_BYTES, heap, toast, indexes,
               coalesce(pg_total_relation_size(to_regclass('segment_event_keys')), 0),
               pg_current_wal_insert_lsn() - '$wal_before'::pg_lsn, $ended - $started
        FROM sizes" >>"$RESULTS"
    psql_db postgres -c "DROP DATABASE $name"
}

layout v04_unpartitioned "CREATE EXTENSION segment_webhook VERSION '0.4'"
layout v05_lz4 "CREATE EXTENSION segment_webhook; SELECT segment_run_maintenance()"
layout v05_pglz "CREATE EXTENSION segment_webhook; SELECT segment_run_maintenance();
    ALTER TABLE segment_events ALTER COLUMN payload SET COMPRESSION pglz"
layout v05_lz4_target_512 "CREATE EXTENSION segment_webhook; SELECT segment_run_maintenance();
    DO \$\$ DECLARE p regclass; BEGIN
        FOR p IN SELECT relid FROM pg_partition_tree('segment_events') WHERE isleaf LOOP
            EXECUTE format('ALTER TABLE %s SET (toast_tuple_target = 512)', p);
        END LOOP; END \$\$"

REPORT=$(python3 - "$RESULTS" <<'PY'
import sys
rows = [line.split() for line in open(sys.argv[1])]
print("bytes per stored event (events: %s; raw JSON received: %.0f bytes/event)" % (rows[0][1], int(rows[0][2]) / int(rows[0][1])))
print("%-20s %8s %8s %8s %8s %8s %8s %9s %9s" % ("layout", "heap", "toast", "indexes", "keys", "total", "WAL", "total/raw", "events/s"))
for name, events, raw, heap, toast, indexes, keys, wal, seconds in rows:
    n = int(events)
    total = int(heap) + int(toast) + int(indexes) + int(keys)
    print("%-20s %8.0f %8.0f %8.0f %8.0f %8.0f %8.0f %8.2fx %9.0f" % (name, int(heap) / n, int(toast) / n, int(indexes) / n,
          int(keys) / n, total / n, int(wal) / n, total / int(raw), n / float(seconds)))
PY
)
{
    echo "bench/disk.sh, $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
    echo "$("$PG_BIN/postgres" --version); $MESSAGES messages from bench/gen_events.py --seed $SEED --retry-share 0"
    echo "build: $(git -C "$BENCH_DIR/.." rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo
    echo "$REPORT"
} | tee /dev/stderr >"$WORK_DIR/report.txt"
if [ "$SAVE" = 1 ]; then
    mkdir -p "$BENCH_DIR/results"
    cp "$WORK_DIR/report.txt" "$BENCH_DIR/results/disk-$(date -u +%Y-%m-%d).txt"
fi
