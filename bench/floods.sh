#!/usr/bin/env bash
# The flood benchmark: a good client's latency while the worker holds 10,000 idle keep-alive connections and
# 1,000 slowloris connections (one header byte per second), the worker's memory meanwhile, and how fast a
# connection beyond segment_webhook.max_connections is answered 503. One throwaway Postgres 15 cluster, created
# here and always removed; the driver is bench/floods_driver.py, the report bench/floods_report.py. The run
# fails (exit 1) when a check fails: the good client got something other than 200, an idle connection could
# not be opened, no connection was refused with 503 at max_connections, or an event answered 200 is not stored. Figures against their targets
# (p99 < 100 ms, bounded memory) are reported, not asserted.
#
# Usage: bash bench/floods.sh [options]
#   --idle N              idle keep-alive connections (default 10000)
#   --slowloris N         slowloris connections (default 1000)
#   --rate R              good client requests per second (default 100), over
#   --good-connections N  keep-alive connections (default 4)
#   --baseline-seconds S  the good client alone (default 20)
#   --flood-seconds S     the good client under the flood (default 60), after 12 s of slowloris warm-up
#   --overflow-seconds S  the good client and the probes with max_connections reached (default 20)
#   --probes N            connections beyond max_connections (default 200)
#   --seed S              generator seed (default 20240506)
#   --no-save             do not write bench/results/
# Environment: PG_BIN (default /usr/lib/postgresql/15/bin).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
IDLE=10000
SLOWLORIS=1000
RATE=100
GOOD_CONNECTIONS=4
BASELINE_SECONDS=20
FLOOD_SECONDS=60
OVERFLOW_SECONDS=20
PROBES=200
SEED=20240506
SAVE=1
SECRET='bench-shared-secret-9f2c'
while [ $# -gt 0 ]; do
    case "$1" in
        --idle) IDLE=$2; shift 2 ;;
        --slowloris) SLOWLORIS=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --good-connections) GOOD_CONNECTIONS=$2; shift 2 ;;
        --baseline-seconds) BASELINE_SECONDS=$2; shift 2 ;;
        --flood-seconds) FLOOD_SECONDS=$2; shift 2 ;;
        --overflow-seconds) OVERFLOW_SECONDS=$2; shift 2 ;;
        --probes) PROBES=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --no-save) SAVE=0; shift ;;
        -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { print }' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done
# Room for every flood connection, the good client's and a few more: the rest is filled up in phase 3.
MAX_CONNECTIONS=$((IDLE + SLOWLORIS + GOOD_CONNECTIONS + 100))
# The idle connections must outlive the run (idle_timeout is 60 s by default); slowloris ones keep the default
# read_timeout of 10 s.
IDLE_TIMEOUT=15min

for tool in initdb pg_ctl psql pg_config postgres; do
    [ -x "$PG_BIN/$tool" ] || { echo "missing $PG_BIN/$tool: install postgresql-15" >&2; exit 1; }
done
command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 1; }
LIBRARY=$("$PG_BIN/pg_config" --pkglibdir)/segment_webhook.so
[ -f "$LIBRARY" ] || { echo "segment_webhook is not installed: run 'make install' first" >&2; exit 1; }
LIBRARY_BUILD="$(date -u -r "$LIBRARY" '+%Y-%m-%d %H:%M:%S UTC'), sha256 $(sha256sum "$LIBRARY" | cut -c1-16)"
# Every connection is a descriptor, on both sides: the driver needs more than the usual 1024 too.
ulimit -Sn "$(ulimit -Hn)"
NOFILE=$(ulimit -Sn)
[ "$NOFILE" -gt $((MAX_CONNECTIONS + 256)) ] ||
    { echo "the open files limit ($NOFILE) is too low for $MAX_CONNECTIONS connections" >&2; exit 1; }

RUN_AS=()
[ "$(id -u)" != 0 ] || RUN_AS=(runuser -u postgres --) # initdb refuses root
WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/segment_floods_bench.XXXXXX")
DATA_DIR=$WORK_DIR/data
SERVER_STARTED=0
cleanup() {
    local status=$?
    if [ "$SERVER_STARTED" = 1 ]; then
        [ "$status" = 0 ] || { echo "--- last lines of the server log ---" >&2; tail -n 30 "$WORK_DIR/server.log" >&2; }
        (cd "$WORK_DIR" && "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$DATA_DIR" -m immediate -w stop >/dev/null 2>&1) || true
    fi
    rm -rf "$WORK_DIR"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
[ "${#RUN_AS[@]}" = 0 ] || chown postgres: "$WORK_DIR"
cd "$WORK_DIR"
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
START_TIME=$(date +%s)

# The cluster, as bench/ingest.sh makes it (the README's role and grants), with the limits this run needs.
PGPORT_BENCH=$(free_port)
WEBHOOK_PORT=$(free_port)
log "initdb in $DATA_DIR, Postgres on port $PGPORT_BENCH, webhook on 127.0.0.1:$WEBHOOK_PORT"
"${RUN_AS[@]}" "$PG_BIN/initdb" -D "$DATA_DIR" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
    --no-instructions >"$WORK_DIR/initdb.log" 2>&1 || { cat "$WORK_DIR/initdb.log" >&2; exit 1; }
pg_ctl_run() { # runuser resets the soft open files limit to 1024: give the server the hard limit
    "${RUN_AS[@]}" bash -c 'ulimit -Sn "$(ulimit -Hn)" && exec "$@"' pg_ctl "$PG_BIN/pg_ctl" -D "$DATA_DIR" "$@"
}
pg_ctl_run -l "$WORK_DIR/server.log" -w -o "-p $PGPORT_BENCH -k $WORK_DIR" start >/dev/null
SERVER_STARTED=1
psql_run() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$WORK_DIR" -p "$PGPORT_BENCH" -U postgres -d postgres "$@"; }
psql_value() { psql_run -At -c "$1"; }
psql_run <<'SQL'
CREATE EXTENSION segment_webhook;
CREATE ROLE segment_ingest LOGIN;
GRANT USAGE ON SCHEMA public TO segment_ingest;
GRANT SELECT ON segment_sources TO segment_ingest;
GRANT INSERT ON segment_events, segment_rejected TO segment_ingest;
GRANT SELECT (source_id, message_id) ON segment_events TO segment_ingest;
GRANT INSERT, SELECT (source_id, message_id, event_id) ON segment_event_keys TO segment_ingest;
GRANT USAGE ON SEQUENCE segment_events_id_seq TO segment_ingest;
SQL
WRITE_KEY=$(psql_value "SELECT segment_create_source('bench', '$SECRET')")
pg_ctl_run -m fast -w stop >/dev/null
cat >>"$DATA_DIR/postgresql.conf" <<CONF

# bench/floods.sh
shared_preload_libraries = 'segment_webhook'
segment_webhook.port = $WEBHOOK_PORT
segment_webhook.role = 'segment_ingest'
segment_webhook.max_connections = $MAX_CONNECTIONS
segment_webhook.idle_timeout = '$IDLE_TIMEOUT'
CONF
pg_ctl_run -l "$WORK_DIR/server.log" -w -o "-p $PGPORT_BENCH -k $WORK_DIR" start >/dev/null
WORKER_PID=
for i in $(seq 1 100); do
    WORKER_PID=$(psql_value "SELECT pid FROM pg_stat_activity WHERE backend_type = 'segment_webhook worker'")
    [ -n "$WORKER_PID" ] && python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' \
        "$WEBHOOK_PORT" 2>/dev/null && break
    sleep 0.1
done
[ -n "$WORKER_PID" ] || { echo "the segment_webhook worker did not start" >&2; exit 1; }
WORKER_NOFILE=$(awk '/^Max open files/ {print $4}' "/proc/$WORKER_PID/limits")
log "worker pid $WORKER_PID, open files soft limit $WORKER_NOFILE"

# Messages: every request of the run carries a new one.
TOTAL_SECONDS=$((BASELINE_SECONDS + FLOOD_SECONDS + OVERFLOW_SECONDS))
COUNT=$((MAX_CONNECTIONS + PROBES + RATE * TOTAL_SECONDS + 1000))
log "generating $COUNT messages"
python3 "$BENCH_DIR/gen_events.py" --count "$COUNT" --seed "$SEED" --out "$WORK_DIR/messages.jsonl"

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "driving: ${BASELINE_SECONDS}s baseline, $IDLE idle + $SLOWLORIS slowloris, ${FLOOD_SECONDS}s flood, ${OVERFLOW_SECONDS}s at max_connections"
REPORT_STATUS=0
python3 "$BENCH_DIR/floods_driver.py" run --port "$WEBHOOK_PORT" --write-key="$WRITE_KEY" --secret "$SECRET" \
    --messages "$WORK_DIR/messages.jsonl" --worker-pid "$WORKER_PID" --rate "$RATE" \
    --connections "$GOOD_CONNECTIONS" --idle "$IDLE" --slowloris "$SLOWLORIS" \
    --baseline-seconds "$BASELINE_SECONDS" --flood-seconds "$FLOOD_SECONDS" --overflow-seconds "$OVERFLOW_SECONDS" \
    --probes "$PROBES" --max-connections "$MAX_CONNECTIONS" --acked "$WORK_DIR/acked.txt" \
    --json "$WORK_DIR/figures.json" || { echo "the driver failed" >&2; exit 1; }
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
python3 "$BENCH_DIR/floods_report.py" "$WORK_DIR/figures.json" >"$WORK_DIR/report.txt" || REPORT_STATUS=$?

# Every event answered 200 must be stored (the worker answers after COMMIT).
chmod a+r "$WORK_DIR/acked.txt"
STORED=$(psql_run -At <<SQL
CREATE TEMP TABLE acked (message_id text);
\copy acked FROM '$WORK_DIR/acked.txt'
SELECT count(*) || ' ' || count(e.message_id) || ' ' || (SELECT count(*) FROM segment_events)
FROM acked a LEFT JOIN segment_events e ON e.message_id = a.message_id;
SQL
)
read -r ACKED FOUND ROWS <<<"$STORED"
CHECK="stored:      $FOUND of the $ACKED events answered 200 are in segment_events ($ROWS rows in all)"
[ "$FOUND" = "$ACKED" ] || CHECK="$CHECK: CHECK FAILED"
SERVER_ERRORS=$(grep -c -E 'PANIC|FATAL|server process .* terminated|segment_webhook: .*(error|failed)' "$WORK_DIR/server.log" || true)

RESULT_TEXT=$(
    echo "segment_webhook flood benchmark (bench/floods.sh)"
    echo "date:        $(date -u '+%Y-%m-%d %H:%M:%S UTC'), run took $(($(date +%s) - START_TIME)) s"
    echo "host:        nproc=$(nproc), CPU $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), memory $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)"
    echo "load:        load average $LOAD_BEFORE at the start, $LOAD_AFTER at the end"
    echo "postgres:    $("$PG_BIN/postgres" --version)"
    echo "library:     $LIBRARY, built $LIBRARY_BUILD"
    echo "settings:    initdb defaults plus the README's (shared_preload_libraries, port, role segment_ingest), segment_webhook.max_connections = $MAX_CONNECTIONS, idle_timeout = $IDLE_TIMEOUT; read_timeout $(psql_value 'SHOW segment_webhook.read_timeout'), max_header_size $(psql_value 'SHOW segment_webhook.max_header_size'), batch_delay $(psql_value 'SHOW segment_webhook.batch_delay'); worker open files limit $WORKER_NOFILE"
    echo "$CHECK"
    echo "server log:  $SERVER_ERRORS lines of errors, crashes or restarts"
    echo
    cat "$WORK_DIR/report.txt"
)
echo "$RESULT_TEXT"
if [ "$SAVE" = 1 ]; then
    RESULT_FILE=$BENCH_DIR/results/floods-$(date -u +%Y-%m-%d).txt
    echo "$RESULT_TEXT" >"$RESULT_FILE"
    log "results written to $RESULT_FILE"
fi
if [ "$REPORT_STATUS" != 0 ] || grep -q 'CHECK FAILED' <<<"$RESULT_TEXT"; then
    log "a check failed (see above)"
    exit 1
fi
