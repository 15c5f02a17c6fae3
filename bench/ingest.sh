#!/usr/bin/env bash
# The ingest benchmark: segment_webhook's HTTP worker against the database's own write path (COPY) and against
# the receiver a team would otherwise write (Node.js, fastify + pg), all in one run on one throwaway Postgres 15
# cluster that this script creates and always removes again, writing into the same segment_events table with
# the same indexes (truncated between scenarios). Every scenario is verified afterwards (rows stored = distinct
# messages sent, nothing rejected, every answer 2xx); a scenario that fails the check is marked INVALID.
#
# Usage: bash bench/ingest.sh [options]
#   --p1-messages N       messages for P1 (500 per request) and baseline L (default 200000)
#   --p2-messages N       messages for P2 and baseline R (one per request; default 100000, at most --p1-messages)
#   --rounds R            rounds of the main scenarios, order reversed every other round (default 3)
#   --retry-share F       share of messages that are retries of an earlier one, same messageId (default 0.01)
#   --seed S              generator seed (default 20240506)
#   --p1-connections N    keep-alive connections for P1 (default 4)
#   --p2-connections N    keep-alive connections for P2 and R (default 64)
#   --curve-requests N    requests per point of the curves (default 40000), each point also
#   --curve-seconds S     limited to S seconds of sending (default 8)
#   --idle-connections N  open idle connections for the worker's RSS (default 1000)
#   --server-nofile N     soft limit of open files for the server's processes (default: the hard limit;
#                         'keep' leaves what runuser/the shell gives, often 1024, see bench/README.md)
#   --no-node             skip baseline R (no Node.js needed)    --no-curves   skip the curves
#   --no-profile          skip the perf profile of the worker    --no-save     do not write bench/results/
#   --set NAME=VALUE      one more server setting in the cluster's postgresql.conf, after the README's (repeatable;
#                         e.g. --set segment_webhook.warehouse=off); the report's settings line lists them
#   --extension-version V CREATE EXTENSION segment_webhook VERSION 'V' (default: the default version), e.g. 0.4 for
#                         the unpartitioned segment_events with this build
#   --after-rounds SQL    a query run once right after the rounds (before the curves); its rows go into the
#                         report's header as 'after rounds:' (e.g. to check what a background job did)
# Environment: PG_BIN (default /usr/lib/postgresql/15/bin).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
P1_MESSAGES=200000
P2_MESSAGES=100000
ROUNDS=3
RETRY_SHARE=0.01
SEED=20240506
P1_CONNECTIONS=4
P2_CONNECTIONS=64
CURVE_REQUESTS=40000
CURVE_SECONDS=8
IDLE_CONNECTIONS=1000
WITH_NODE=1
WITH_CURVES=1
WITH_PROFILE=1
SAVE=1
P1_BATCH=500
SECRET='bench-shared-secret-9f2c'
SERVER_NOFILE=$(ulimit -Hn)
PERF_FREQUENCY=999
EXTRA_SETTINGS=()
AFTER_ROUNDS_SQL=
EXTENSION_VERSION=

while [ $# -gt 0 ]; do
    case "$1" in
        --p1-messages) P1_MESSAGES=$2; shift 2 ;;
        --p2-messages) P2_MESSAGES=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --retry-share) RETRY_SHARE=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --p1-connections) P1_CONNECTIONS=$2; shift 2 ;;
        --p2-connections) P2_CONNECTIONS=$2; shift 2 ;;
        --curve-requests) CURVE_REQUESTS=$2; shift 2 ;;
        --curve-seconds) CURVE_SECONDS=$2; shift 2 ;;
        --idle-connections) IDLE_CONNECTIONS=$2; shift 2 ;;
        --server-nofile) SERVER_NOFILE=$2; shift 2 ;;
        --no-node) WITH_NODE=0; shift ;;
        --no-curves) WITH_CURVES=0; shift ;;
        --no-profile) WITH_PROFILE=0; shift ;;
        --no-save) SAVE=0; shift ;;
        --set)
            [[ "$2" =~ ^[A-Za-z_][A-Za-z0-9_.]*=.*$ ]] || { echo "--set wants NAME=VALUE, got: $2" >&2; exit 2; }
            EXTRA_SETTINGS+=("$2"); shift 2 ;;
        --extension-version) EXTENSION_VERSION=$2; shift 2 ;;
        --after-rounds) AFTER_ROUNDS_SQL=$2; shift 2 ;;
        -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { print }' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done
[ "$P2_MESSAGES" -le "$P1_MESSAGES" ] || { echo "--p2-messages must not exceed --p1-messages" >&2; exit 2; }

for tool in initdb pg_ctl psql pg_config; do
    [ -x "$PG_BIN/$tool" ] || { echo "missing $PG_BIN/$tool: install postgresql-15" >&2; exit 1; }
done
for tool in python3 g++ curl split; do
    command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done
if [ "$WITH_NODE" = 1 ]; then
    command -v node >/dev/null && command -v npm >/dev/null ||
        { echo "node and npm are needed for baseline R (apt-get install nodejs npm), or pass --no-node" >&2; exit 1; }
fi
if [ "$WITH_PROFILE" = 1 ] && ! command -v perf >/dev/null; then
    echo "perf not found (apt-get install linux-perf): the profile is skipped" >&2
    WITH_PROFILE=0
fi
LIBRARY=$("$PG_BIN/pg_config" --pkglibdir)/segment_webhook.so
library_fingerprint() { printf '%s, sha256 %s' "$(date -u -r "$LIBRARY" '+%Y-%m-%d %H:%M:%S UTC')" "$(sha256sum "$LIBRARY" | cut -c1-16)"; }
if [ ! -f "$("$PG_BIN/pg_config" --sharedir)/extension/segment_webhook.control" ] || [ ! -f "$LIBRARY" ]; then
    echo "segment_webhook is not installed: run 'make install' first" >&2
    exit 1
fi

# initdb refuses to run as root, so as root the server runs as the postgres user.
RUN_AS=()
if [ "$(id -u)" = 0 ]; then
    RUN_AS=(runuser -u postgres --)
fi

WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/segment_ingest_bench.XXXXXX")
DATA_DIR=$WORK_DIR/data
SERVER_LOG=$WORK_DIR/server.log
SERVER_STARTED=0
NODE_PID=
BACKGROUND_PIDS=()

cleanup() {
    local status=$?
    for pid in "${BACKGROUND_PIDS[@]}" $NODE_PID; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${BACKGROUND_PIDS[@]}" $NODE_PID; do
        wait "$pid" 2>/dev/null || true
    done
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

if [ "${#RUN_AS[@]}" -gt 0 ]; then
    chown postgres: "$WORK_DIR"
fi
cd "$WORK_DIR"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
RESULTS=$WORK_DIR/results.jsonl
: >"$RESULTS"
REPORT=(python3 "$BENCH_DIR/ingest_report.py")
START_TIME=$(date +%s)

# ---------------------------------------------------------------------------------------------------------
# Tools: the load driver, and the Node receiver's packages (exactly those of package-lock.json).
# ---------------------------------------------------------------------------------------------------------
log "building the load driver"
g++ -O2 -std=c++17 -Wall -Wextra -o "$WORK_DIR/load_driver" "$BENCH_DIR/load_driver.cc" -lssl -lcrypto
DRIVER=$WORK_DIR/load_driver
if [ "$WITH_NODE" = 1 ]; then
    RECEIVER_DIR=$BENCH_DIR/receiver
    if [ ! -f "$RECEIVER_DIR/node_modules/.package-lock.json" ] ||
        [ "$RECEIVER_DIR/package-lock.json" -nt "$RECEIVER_DIR/node_modules/.package-lock.json" ]; then
        log "installing the receiver's npm packages (npm ci)"
        (cd "$RECEIVER_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    fi
fi

# ---------------------------------------------------------------------------------------------------------
# Messages: one stream from the generator; P1 and L use all of it, P2 and R its first P2_MESSAGES lines.
# ---------------------------------------------------------------------------------------------------------
log "generating $P1_MESSAGES messages (seed $SEED, retry share $RETRY_SHARE)"
python3 "$BENCH_DIR/gen_events.py" --count "$P1_MESSAGES" --seed "$SEED" --retry-share "$RETRY_SHARE" \
    --out "$WORK_DIR/messages.jsonl"
head -n "$P2_MESSAGES" "$WORK_DIR/messages.jsonl" >"$WORK_DIR/messages_p2.jsonl"
chmod a+r "$WORK_DIR"/messages*.jsonl
log "signing the requests"
P1_FACTS=$(python3 "$BENCH_DIR/sign_requests.py" --secret "$SECRET" --batch "$P1_BATCH" --sign first \
    --in "$WORK_DIR/messages.jsonl" --out "$WORK_DIR/p1.requests")
P2_FACTS=$(python3 "$BENCH_DIR/sign_requests.py" --secret "$SECRET" \
    --in "$WORK_DIR/messages_p2.jsonl" --out "$WORK_DIR/p2.requests")
json_field() { python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
P1_UNIQUE=$(json_field "$P1_FACTS" unique)
P2_UNIQUE=$(json_field "$P2_FACTS" unique)

# ---------------------------------------------------------------------------------------------------------
# The cluster: a fresh initdb. Extension, role and source are created before the library is preloaded, then
# the server restarts with the settings the README tells users to set.
# ---------------------------------------------------------------------------------------------------------
PGPORT_BENCH=$(free_port)
WEBHOOK_PORT=$(free_port)
log "initdb in $DATA_DIR, Postgres on port $PGPORT_BENCH, webhook on 127.0.0.1:$WEBHOOK_PORT"
"${RUN_AS[@]}" "$PG_BIN/initdb" -D "$DATA_DIR" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
    --no-instructions >"$WORK_DIR/initdb.log" 2>&1 || { cat "$WORK_DIR/initdb.log" >&2; exit 1; }
# The worker holds one descriptor per connection. runuser (PAM) resets the soft limit of open files to 1024,
# which 1,000 connections plus Postgres's own files exceed, so the server gets the hard limit unless told to
# keep it (see bench/README.md for what happens then).
pg_start() {
    local limit=$SERVER_NOFILE
    [ "$limit" = keep ] && limit=
    "${RUN_AS[@]}" bash -c 'if [ -n "$1" ]; then ulimit -Sn "$1" || exit 1; fi; shift; exec "$@"' limit "$limit" \
        "$PG_BIN/pg_ctl" -D "$DATA_DIR" -l "$SERVER_LOG" -w -o "-p $PGPORT_BENCH -k $WORK_DIR" start >/dev/null
    SERVER_STARTED=1
}
pg_start
psql_run() {
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$WORK_DIR" -p "$PGPORT_BENCH" -U postgres -d postgres "$@"
}
psql_value() { psql_run -At -c "$1"; }

psql_run <<SQL
CREATE EXTENSION segment_webhook${EXTENSION_VERSION:+ VERSION '$EXTENSION_VERSION'};
-- The dedicated role the README recommends for the worker; the Node receiver connects as it too.
CREATE ROLE segment_ingest LOGIN;
GRANT USAGE ON SCHEMA public TO segment_ingest;
GRANT SELECT ON segment_sources TO segment_ingest;
GRANT INSERT ON segment_events, segment_rejected TO segment_ingest;
-- Not in the README's list, but needed (2026-11-22): the worker's INSERT ... RETURNING source_id, message_id
-- reads those columns, and without SELECT on them every batch fails with "permission denied".
GRANT SELECT (source_id, message_id) ON segment_events TO segment_ingest;
-- From 0.4: the worker reads the suppressed ids, records deletion notifications, and compares duplicates with
-- what is stored (message_id_conflict).
DO \$\$
BEGIN
    IF to_regclass('segment_suppressions') IS NOT NULL THEN
        GRANT SELECT ON segment_suppressions TO segment_ingest;
        GRANT INSERT (source_id, user_id) ON segment_deletions TO segment_ingest;
    END IF;
    -- From 0.5: the keys that deduplicate the partitioned segment_events, and the ids drawn for them.
    IF to_regclass('segment_event_keys') IS NOT NULL THEN
        GRANT INSERT, SELECT (source_id, message_id, event_id) ON segment_event_keys TO segment_ingest;
        GRANT USAGE ON SEQUENCE segment_events_id_seq TO segment_ingest;
    END IF;
    IF to_regprocedure('segment_message_conflicts(integer[], text[], jsonb[])') IS NOT NULL THEN
        GRANT EXECUTE ON FUNCTION segment_message_conflicts(integer[], text[], jsonb[]) TO segment_ingest;
    END IF;
END
\$\$;
SQL
WRITE_KEY=$(psql_value "SELECT segment_create_source('bench', '$SECRET')")
# The worker's own counters, where this build has them: batches committed, for the events per commit.
HAVE_WORKER_STATS=$(psql_value "SELECT to_regclass('segment_webhook_stats') IS NOT NULL")
SOURCE_ID=$(psql_value "SELECT id FROM segment_sources WHERE name = 'bench'")
# From 0.5 the keys go with the events.
HAVE_KEYS=$(psql_value "SELECT CASE WHEN to_regclass('segment_event_keys') IS NULL THEN '' ELSE ', segment_event_keys' END")
"${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$DATA_DIR" -m fast -w stop >/dev/null
SERVER_STARTED=0
cat >>"$DATA_DIR/postgresql.conf" <<CONF

# bench/ingest.sh: the settings the README asks for; everything else is initdb's default.
shared_preload_libraries = 'segment_webhook'
segment_webhook.port = $WEBHOOK_PORT
segment_webhook.role = 'segment_ingest'
CONF
if [ "${#EXTRA_SETTINGS[@]}" -gt 0 ]; then
    echo "# bench/ingest.sh --set" >>"$DATA_DIR/postgresql.conf"
    for setting in "${EXTRA_SETTINGS[@]}"; do
        # Quoted, with quotes doubled: postgresql.conf accepts every type of setting as a quoted string.
        printf "%s = '%s'\n" "${setting%%=*}" "$(sed "s/'/''/g" <<<"${setting#*=}")" >>"$DATA_DIR/postgresql.conf"
    done
fi
LIBRARY_AT_START=$(library_fingerprint)
# The server keeps the build it loaded at start even if the library is reinstalled meanwhile (other work on
# this machine does that), and perf would then read the symbols of the new file. So perf records no build ids
# and reads the symbols through a private file tree (--symfs) where the library's path holds a copy of the
# build loaded now, and every other path leads to the real files.
SYMFS=$WORK_DIR/symfs
if [ "$WITH_PROFILE" = 1 ]; then
    mkdir -p "$SYMFS$(dirname "$LIBRARY")" "$SYMFS/usr/lib"
    cp "$LIBRARY" "$SYMFS$LIBRARY"
    # A mapping whose file was replaced is listed in /proc/<pid>/maps as "<path> (deleted)".
    ln -s "$SYMFS$LIBRARY" "$SYMFS$LIBRARY (deleted)"
    for entry in /usr/lib/*; do
        [ "$entry" = /usr/lib/postgresql ] || ln -s "$entry" "$SYMFS$entry"
    done
    for entry in /usr/lib/postgresql/*/; do
        entry=${entry%/}
        [ -e "$SYMFS$entry" ] || ln -s "$entry" "$SYMFS$entry"
    done
    for entry in "$(dirname "$(dirname "$LIBRARY")")"/*; do
        [ -e "$SYMFS$entry" ] || ln -s "$entry" "$SYMFS$entry"
    done
    for entry in "$(dirname "$LIBRARY")"/*; do
        [ -e "$SYMFS$entry" ] || ln -s "$entry" "$SYMFS$entry"
    done
    for entry in /lib /lib64 /bin /usr/bin /usr/local; do
        [ -e "$entry" ] && [ ! -e "$SYMFS$entry" ] && ln -s "$entry" "$SYMFS$entry"
    done
fi
pg_start
POSTMASTER_PID=$(head -n 1 "$DATA_DIR/postmaster.pid")

worker_pid() {
    psql_value "SELECT pid FROM pg_stat_activity WHERE backend_type = 'segment_webhook worker'"
}
wait_for_worker() {
    local i
    for i in $(seq 1 100); do
        if [ -n "$(worker_pid)" ] &&
            [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$WEBHOOK_PORT/health")" = 200 ]; then
            return 0
        fi
        sleep 0.1
    done
    echo "the segment_webhook worker did not become healthy within 10 s" >&2
    exit 1
}
wait_for_worker
# From 0.5: the warehouse worker makes the day partitions of segment_events when it starts (the default
# partition being empty, from today); every scenario writes into today's partition, as in production.
if [ -n "$HAVE_KEYS" ]; then
    for i in $(seq 1 100); do
        [ "$(psql_value 'SELECT count(*) FROM segment_event_partitions()')" -gt 0 ] && break
        sleep 0.1
    done
    log "day partitions of segment_events: $(psql_value 'SELECT count(*) FROM segment_event_partitions()')"
fi
WORKER_PID=$(worker_pid)
WORKER_NOFILE=$(awk '/^Max open files/ {print $4}' "/proc/$WORKER_PID/limits")
log "worker pid $WORKER_PID, healthy, open files soft limit $WORKER_NOFILE"

# A signed request through curl, independent of the driver, proves the setup before anything is timed.
SMOKE_BODY=$(sed -n 1p "$WORK_DIR/messages.jsonl")
SMOKE_SIGNATURE=$(printf '%s' "$SMOKE_BODY" | openssl dgst -sha1 -hmac "$SECRET" | sed 's/^.*= //')
SMOKE_ANSWER=$(printf '%s' "$SMOKE_BODY" | curl -s -w ' %{http_code}' -H 'Content-Type: application/json' \
    -H "X-Signature: $SMOKE_SIGNATURE" --data-binary @- "http://127.0.0.1:$WEBHOOK_PORT/v1/webhook?writeKey=$WRITE_KEY")
case "$SMOKE_ANSWER" in
    *' 200') log "smoke test: $SMOKE_ANSWER" ;;
    *) echo "a signed test request was not accepted: $SMOKE_ANSWER" >&2; exit 1 ;;
esac

# ---------------------------------------------------------------------------------------------------------
# Baseline L's input: the columns the worker fills, computed beforehand (not timed) with segment_parse from
# the same messages, first occurrence of each messageId (COPY has no ON CONFLICT), in text COPY format; then
# split into files of P1_BATCH rows for the batched variant.
# ---------------------------------------------------------------------------------------------------------
COPY_COLUMNS='source_id, message_id, type, event, name, category, user_id, anonymous_id, group_id, previous_id,
    "timestamp", original_timestamp, sent_at, received_at, payload'
COPY_DIR=$WORK_DIR/copy
mkdir -p "$COPY_DIR"
[ "${#RUN_AS[@]}" -eq 0 ] || chown postgres: "$COPY_DIR"
log "preparing baseline L's COPY files"
psql_run <<SQL
CREATE TABLE bench_staging (id bigserial PRIMARY KEY, line text NOT NULL);
-- CSV with delimiter and quote bytes that JSON never contains raw, so every backslash arrives as it is.
COPY bench_staging (line) FROM '$WORK_DIR/messages.jsonl' WITH (FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02');
COPY (
    SELECT $SOURCE_ID, p.message_id, p.type, p.event, p.name, p.category, p.user_id, p.anonymous_id, p.group_id,
           p.previous_id, COALESCE(p."timestamp", now()), p.original_timestamp, p.sent_at, now(), s.msg
    FROM (SELECT DISTINCT ON (line::jsonb ->> 'messageId') id, line::jsonb AS msg
          FROM bench_staging ORDER BY line::jsonb ->> 'messageId', id) AS s
         CROSS JOIN LATERAL segment_parse(s.msg) AS p
    ORDER BY s.id
) TO '$COPY_DIR/all.copy';
DROP TABLE bench_staging;
SQL
L_ROWS=$(wc -l <"$COPY_DIR/all.copy")
[ "$L_ROWS" = "$P1_UNIQUE" ] || { echo "COPY file has $L_ROWS rows, expected $P1_UNIQUE" >&2; exit 1; }
(cd "$COPY_DIR" && split -l "$P1_BATCH" -d -a 6 all.copy chunk_)
chmod a+r "$COPY_DIR"/*
for chunk in "$COPY_DIR"/chunk_*; do
    printf "COPY segment_events (%s) FROM '%s';\n" "$(echo $COPY_COLUMNS)" "$chunk"
done >"$WORK_DIR/l_batched.sql"
printf "COPY segment_events (%s) FROM '%s';\n" "$(echo $COPY_COLUMNS)" "$COPY_DIR/all.copy" >"$WORK_DIR/l_single.sql"

# ---------------------------------------------------------------------------------------------------------
# Baseline R: the Node receiver, connected to the same database over the Unix socket.
# ---------------------------------------------------------------------------------------------------------
if [ "$WITH_NODE" = 1 ]; then
    RECEIVER_PORT=$(free_port)
    RECEIVER_POOL=10 RECEIVER_PORT=$RECEIVER_PORT PGHOST=$WORK_DIR PGPORT=$PGPORT_BENCH PGUSER=segment_ingest \
        PGDATABASE=postgres node "$RECEIVER_DIR/server.js" >"$WORK_DIR/receiver.log" 2>&1 &
    NODE_PID=$!
    for i in $(seq 1 100); do
        grep -q 'listening' "$WORK_DIR/receiver.log" 2>/dev/null && break
        kill -0 "$NODE_PID" 2>/dev/null || { cat "$WORK_DIR/receiver.log" >&2; exit 1; }
        sleep 0.1
    done
    grep -q 'listening' "$WORK_DIR/receiver.log" || { echo "the Node receiver did not start" >&2; exit 1; }
    log "Node receiver pid $NODE_PID on 127.0.0.1:$RECEIVER_PORT"
fi

# ---------------------------------------------------------------------------------------------------------
# Scenarios. Each starts from an empty table and a checkpoint, and is verified when it ends.
# ---------------------------------------------------------------------------------------------------------
reset_tables() {
    psql_run -c "TRUNCATE segment_events, segment_rejected$HAVE_KEYS" -c 'CHECKPOINT'
    db_position
}

# The next transaction id, the WAL position and the worker's count of committed batches: their differences over
# a scenario are the transaction ids it used (one per transaction for R and L; the worker also uses one per
# subtransaction), the WAL it wrote and the worker's commits. None of them consumes a transaction id or waits for
# the statistics collector.
DB_POSITION=
db_position() {
    local batches=-1
    [ "$HAVE_WORKER_STATS" = t ] && batches="(SELECT coalesce(sum(batches_committed), 0) FROM segment_webhook_stats)"
    DB_POSITION=$(psql_value "SELECT pg_snapshot_xmax(pg_current_snapshot()) || ' ' || (pg_current_wal_lsn() - '0/0')::bigint || ' ' || $batches")
}

# record NAME ROUND JSON: adds the scenario's outcome (the driver's JSON or L's) with the table's counts.
record() {
    local rows rejected before=$DB_POSITION
    db_position
    rows=$(psql_value 'SELECT count(*) FROM segment_events')
    rejected=$(psql_value 'SELECT count(*) FROM segment_rejected')
    "${REPORT[@]}" record "$1" "$2" "$3" "$rows" "$rejected" "$before" "$DB_POSITION" >>"$RESULTS"
    tail -n 1 "$RESULTS" | "${REPORT[@]}" line >&2
}

run_webhook() { # name round requests-file connections [driver options...]
    local name=$1 round=$2 file=$3 connections=$4 output
    shift 4
    reset_tables
    output=$("$DRIVER" --port "$WEBHOOK_PORT" --path "/v1/webhook?writeKey=$WRITE_KEY" --requests "$file" \
        --connections "$connections" --duration 300 --cpu "postgres=$POSTMASTER_PID" --cpu "worker=$(worker_pid)" "$@")
    record "$name" "$round" "$output"
}

run_receiver() { # name round requests-file connections
    local output
    reset_tables
    output=$("$DRIVER" --port "$RECEIVER_PORT" --path "/v1/webhook?writeKey=$WRITE_KEY" --requests "$3" \
        --connections "$4" --duration 300 --cpu "postgres=$POSTMASTER_PID" --cpu "node=$NODE_PID")
    record "$1" "$2" "$output"
}

run_copy() { # name round sql-file
    local before after started finished
    reset_tables
    before=$("${REPORT[@]}" cpu "$POSTMASTER_PID")
    started=$(date +%s.%N)
    psql_run -f "$3"
    finished=$(date +%s.%N)
    after=$("${REPORT[@]}" cpu "$POSTMASTER_PID")
    record "$1" "$2" "$("${REPORT[@]}" copy-result "$L_ROWS" "$P1_UNIQUE" "$started" "$finished" "$before" "$after")"
}

SCENARIOS=(P1 L_batched L_single P2)
if [ "$WITH_NODE" = 1 ]; then
    SCENARIOS+=(R_P2 R_P1)
fi
run_scenario() { # name round
    case "$1" in
        P1) run_webhook P1 "$2" "$WORK_DIR/p1.requests" "$P1_CONNECTIONS" ;;
        P2) run_webhook P2 "$2" "$WORK_DIR/p2.requests" "$P2_CONNECTIONS" ;;
        L_batched) run_copy L_batched "$2" "$WORK_DIR/l_batched.sql" ;;
        L_single) run_copy L_single "$2" "$WORK_DIR/l_single.sql" ;;
        R_P2) run_receiver R_P2 "$2" "$WORK_DIR/p2.requests" "$P2_CONNECTIONS" ;;
        R_P1) run_receiver R_P1 "$2" "$WORK_DIR/p1.requests" "$P1_CONNECTIONS" ;;
    esac
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "warm-up: one P2 pass of 10000 requests (not counted)"
run_webhook warmup 0 "$WORK_DIR/p2.requests" "$P2_CONNECTIONS" --max-requests 10000
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then
        order=("${SCENARIOS[@]}")
    else
        order=()
        for ((i = ${#SCENARIOS[@]} - 1; i >= 0; i--)); do order+=("${SCENARIOS[$i]}"); done
    fi
    log "round $round of $ROUNDS: ${order[*]}"
    for scenario in "${order[@]}"; do
        run_scenario "$scenario" "$round"
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
AFTER_ROUNDS_RESULT=
if [ -n "$AFTER_ROUNDS_SQL" ]; then
    AFTER_ROUNDS_RESULT=$(psql_run -At -F ' | ' -c "$AFTER_ROUNDS_SQL")
    log "after the rounds: $(tr '\n' ';' <<<"$AFTER_ROUNDS_RESULT")"
fi

# ---------------------------------------------------------------------------------------------------------
# Curves: P2 events/s against segment_webhook.batch_delay, and against the number of connections.
# ---------------------------------------------------------------------------------------------------------
set_batch_delay() {
    psql_run -c "ALTER SYSTEM SET segment_webhook.batch_delay = '$1'" -c 'SELECT pg_reload_conf()' >/dev/null
    sleep 1 # the worker applies it on its next loop turn
}
if [ "$WITH_CURVES" = 1 ]; then
    for delay in 0 1 2 5 10; do
        log "curve: batch_delay = ${delay}ms"
        set_batch_delay "${delay}ms"
        run_webhook "curve_delay_${delay}ms" 0 "$WORK_DIR/p2.requests" "$P2_CONNECTIONS" \
            --max-requests "$CURVE_REQUESTS" --duration "$CURVE_SECONDS" --sample-syscalls "$(worker_pid)"
    done
    psql_run -c 'ALTER SYSTEM RESET segment_webhook.batch_delay' -c 'SELECT pg_reload_conf()' >/dev/null
    sleep 1
    for connections in 1 4 16 64 256; do
        log "curve: $connections connections"
        run_webhook "curve_connections_$connections" 0 "$WORK_DIR/p2.requests" "$connections" \
            --max-requests "$CURVE_REQUESTS" --duration "$CURVE_SECONDS" --sample-syscalls "$(worker_pid)"
    done
fi

# ---------------------------------------------------------------------------------------------------------
# The worker's memory (/proc/<pid>/status and smaps_rollup of the worker backend): after all the runs, then in a
# fresh worker (pg_terminate_backend; the postmaster starts it again), idle and with IDLE_CONNECTIONS keep-alive
# connections open and idle, each having sent one P2 request, read while the driver holds them. A long-running
# worker's VmRSS also counts every page of shared_buffers it has touched (RssShmem); the fresh one shows what
# the worker itself needs for its connections.
# ---------------------------------------------------------------------------------------------------------
"${REPORT[@]}" memory "$(worker_pid)" after_runs 0 >>"$RESULTS"
log "memory: restarting the worker, then $IDLE_CONNECTIONS idle keep-alive connections"
OLD_WORKER=$(worker_pid)
psql_value "SELECT pg_terminate_backend($OLD_WORKER)" >/dev/null
for i in $(seq 1 100); do
    NEW_WORKER=$(worker_pid)
    [ -n "$NEW_WORKER" ] && [ "$NEW_WORKER" != "$OLD_WORKER" ] && break
    sleep 0.1
done
wait_for_worker
reset_tables
WORKER_PID=$(worker_pid)
"${REPORT[@]}" memory "$WORKER_PID" fresh_idle 0 >>"$RESULTS"
rm -f "$WORK_DIR/held"
"$DRIVER" --port "$WEBHOOK_PORT" --path "/v1/webhook?writeKey=$WRITE_KEY" --requests "$WORK_DIR/p2.requests" \
    --connections "$IDLE_CONNECTIONS" --max-requests "$IDLE_CONNECTIONS" --duration 20 --grace 10 --hold 4 \
    --ready-file "$WORK_DIR/held" --cpu "postgres=$POSTMASTER_PID" --cpu "worker=$WORKER_PID" >"$WORK_DIR/idle.json" &
HOLD_PID=$!
BACKGROUND_PIDS+=("$HOLD_PID")
for i in $(seq 1 600); do
    [ -f "$WORK_DIR/held" ] && break
    kill -0 "$HOLD_PID" 2>/dev/null || break
    sleep 0.1
done
sleep 1
"${REPORT[@]}" memory "$WORKER_PID" idle_connections "$IDLE_CONNECTIONS" >>"$RESULTS"
wait "$HOLD_PID"
record "idle_connections_$IDLE_CONNECTIONS" 0 "$(cat "$WORK_DIR/idle.json")"

# ---------------------------------------------------------------------------------------------------------
# Where the worker's time goes: perf on the worker during one more P2 and one more P1 (not in the table).
# ---------------------------------------------------------------------------------------------------------
if [ "$WITH_PROFILE" = 1 ]; then
    for load in P2 P1; do
        log "profile: perf record on the worker during $load"
        reset_tables
        WORKER_PID=$(worker_pid)
        # DWARF call graphs: Debian's postgres has no frame pointers, so -g (fp) loses most callers.
        perf record --no-buildid -F "$PERF_FREQUENCY" --call-graph dwarf,16384 -p "$WORKER_PID" \
            -o "$WORK_DIR/perf_$load.data" \
            >/dev/null 2>"$WORK_DIR/perf_$load.log" &
        PERF_PID=$!
        BACKGROUND_PIDS+=("$PERF_PID")
        sleep 0.5
        if [ "$load" = P2 ]; then
            output=$("$DRIVER" --port "$WEBHOOK_PORT" --path "/v1/webhook?writeKey=$WRITE_KEY" \
                --requests "$WORK_DIR/p2.requests" --connections "$P2_CONNECTIONS" --duration 300 \
                --cpu "postgres=$POSTMASTER_PID" --cpu "worker=$WORKER_PID" --sample-syscalls "$WORKER_PID")
        else
            output=$("$DRIVER" --port "$WEBHOOK_PORT" --path "/v1/webhook?writeKey=$WRITE_KEY" \
                --requests "$WORK_DIR/p1.requests" --connections "$P1_CONNECTIONS" --duration 300 \
                --cpu "postgres=$POSTMASTER_PID" --cpu "worker=$WORKER_PID" --sample-syscalls "$WORKER_PID")
        fi
        kill -INT "$PERF_PID" 2>/dev/null || true
        wait "$PERF_PID" 2>/dev/null || true
        record "profile_$load" 0 "$output"
        echo "$PERF_FREQUENCY" >"$WORK_DIR/perf_${load}_frequency.txt"
        perf report --symfs="$SYMFS" --kallsyms=/proc/kallsyms -i "$WORK_DIR/perf_$load.data" --no-children --sort dso,symbol --stdio -g none \
            --percent-limit 0.4 2>/dev/null >"$WORK_DIR/perf_${load}_self.txt" || true
        perf report --symfs="$SYMFS" --kallsyms=/proc/kallsyms -i "$WORK_DIR/perf_$load.data" --children --sort symbol --stdio -g none \
            2>/dev/null >"$WORK_DIR/perf_${load}_children.txt" || true
        # Who calls the hottest symbols (Postgres's static functions have no name here: their callers say what
        # they are).
        perf report --symfs="$SYMFS" --kallsyms=/proc/kallsyms -i "$WORK_DIR/perf_$load.data" --no-children --sort dso,symbol --stdio --max-stack 12 \
            -g caller,1.5,callee,function,percent --percent-limit 2 2>/dev/null >"$WORK_DIR/perf_${load}_chains.txt" || true
    done
fi

# ---------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------
{
    echo "date:        $(date -u '+%Y-%m-%d %H:%M:%S UTC'), run took $(($(date +%s) - START_TIME)) s"
    echo "host:        nproc=$(nproc), CPU $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), memory $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)"
    echo "load:        load average $LOAD_BEFORE before the rounds, $LOAD_AFTER after"
    echo "postgres:    $(psql_value 'SELECT version()')"
    echo "library:     $LIBRARY, built $LIBRARY_AT_START"
    if [ "$(library_fingerprint)" != "$LIBRARY_AT_START" ]; then
        if [ "${LIBRARY_AT_START##* }" = "$(sha256sum "$LIBRARY" | cut -c1-16)" ]; then
            echo "note:        the same build was installed again during the run"
        else
            echo "note:        the installed library was replaced during the run (now built $(library_fingerprint)); the server kept the build above, which all figures are of"
        fi
    fi
    echo "limits:      open files soft limit of the server's processes $WORKER_NOFILE ($( [ "$SERVER_NOFILE" = keep ] && echo 'as runuser/the shell gave it' || echo 'raised to the hard limit by the script'))"
    echo "settings:    initdb defaults (shared_buffers $(psql_value 'SHOW shared_buffers'), synchronous_commit $(psql_value 'SHOW synchronous_commit'), wal_sync_method $(psql_value 'SHOW wal_sync_method'), max_wal_size $(psql_value 'SHOW max_wal_size')) plus shared_preload_libraries = 'segment_webhook', segment_webhook.port, segment_webhook.role = 'segment_ingest' with the README's grants plus SELECT (source_id, message_id) ON segment_events, which the worker's INSERT ... RETURNING needs; worker defaults batch_size 500, batch_delay 5ms, workers 1"
    if [ "${#EXTRA_SETTINGS[@]}" -gt 0 ]; then
        echo "set:         ${EXTRA_SETTINGS[*]} (--set; shown now: $(for setting in "${EXTRA_SETTINGS[@]}"; do printf '%s ' "$(psql_value "SHOW ${setting%%=*}" 2>/dev/null || echo unknown)"; done | sed 's/ $//'))"
    fi
    if [ -n "$AFTER_ROUNDS_SQL" ]; then
        echo "query:       $AFTER_ROUNDS_SQL (--after-rounds)"
        sed 's/^/after rounds: /' <<<"$AFTER_ROUNDS_RESULT"
    fi
    echo "table:       segment_events as the extension creates it, indexes $(psql_value "SELECT string_agg(pg_get_indexdef(indexrelid), '; ' ORDER BY indexrelid) FROM pg_index WHERE indrelid = 'segment_events'::regclass" | sed 's/CREATE \(UNIQUE \)\{0,1\}INDEX \([a-z_]*\) ON [a-z_.]* USING btree /\1\2 /g'); truncated and CHECKPOINT before every scenario"
    echo "data:        $P1_MESSAGES messages from bench/gen_events.py --seed $SEED --retry-share $RETRY_SHARE ($P1_UNIQUE distinct messageIds); P2/R use the first $P2_MESSAGES ($P2_UNIQUE distinct); body bytes $(python3 -c 'import sys; s = [len(l) - 1 for l in open(sys.argv[1], "rb")]; print("avg %d, min %d, max %d" % (sum(s) / len(s), min(s), max(s)))' "$WORK_DIR/messages.jsonl")"
    echo "load:        P1 = $P1_BATCH messages per request (JSON array, X-Signature over the first element), $P1_CONNECTIONS keep-alive connections; P2 = one message per request, $P2_CONNECTIONS connections; one request in flight per connection"
    if [ "$WITH_NODE" = 1 ]; then
        echo "baseline R:  node $(node --version), fastify $(node -p "require('$RECEIVER_DIR/node_modules/fastify/package.json').version"), pg $(node -p "require('$RECEIVER_DIR/node_modules/pg/package.json').version"), pool of 10 over the Unix socket, one INSERT ... ON CONFLICT DO NOTHING per request"
    fi
    echo "baseline L:  COPY segment_events (15 columns) FROM a server-side file of the same rows (first occurrence of each messageId), one COPY per $P1_BATCH rows, each its own transaction, over one session; and one COPY of all rows"
    echo "method:      $ROUNDS rounds, scenario order reversed every other round, median of the rounds; CPU = utime+stime of the postmaster's process tree (and of node for R) during the run"
} >"$WORK_DIR/header.txt"

RESULT_TEXT=$(
    echo "segment_webhook ingest benchmark (bench/ingest.sh)"
    cat "$WORK_DIR/header.txt"
    echo
    "${REPORT[@]}" report "$RESULTS" "$WORK_DIR"
)
echo "$RESULT_TEXT"
if [ "$SAVE" = 1 ]; then
    mkdir -p "$BENCH_DIR/results"
    RESULT_FILE=$BENCH_DIR/results/ingest-$(date -u +%Y-%m-%d).txt
    echo "$RESULT_TEXT" >"$RESULT_FILE"
    log "results written to $RESULT_FILE"
fi
if grep -q INVALID <<<"$RESULT_TEXT"; then
    log "at least one scenario was INVALID (see above)"
    exit 1
fi
