#!/usr/bin/env bash
# Times segment_webhook's SQL functions against independent equivalents (pgcrypto's hmac, plain jsonb SQL)
# in a throwaway Postgres 15 cluster that this script creates, fills with generated Segment messages, and
# always removes again. It checks the functions' answers against those equivalents before timing anything and
# aborts on a wrong answer. It never touches any other cluster and never changes the extension.
#
# Usage: bash bench/sql_functions.sh [--rows N] [--rounds R] [--seed S] [--baseline-only]
#   --baseline-only  time only the pgcrypto and SQL sides (to try the harness before the extension is installed)
# Environment: PG_BIN (default /usr/lib/postgresql/15/bin).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
ROWS=100000
ROUNDS=7
SEED=20240506
BASELINE_ONLY=0

while [ $# -gt 0 ]; do
    case "$1" in
        --rows) ROWS=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --baseline-only) BASELINE_ONLY=1; shift ;;
        -h | --help) sed -n '2,11p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done

for tool in initdb pg_ctl psql; do
    [ -x "$PG_BIN/$tool" ] || { echo "missing $PG_BIN/$tool: install postgresql-15" >&2; exit 1; }
done
command -v python3 >/dev/null || { echo "python3 is needed for the generator and the report" >&2; exit 1; }
if [ "$BASELINE_ONLY" = 0 ] && [ ! -f "$("$PG_BIN/pg_config" --sharedir)/extension/segment_webhook.control" ]; then
    echo "segment_webhook is not installed: run 'make install' first (or pass --baseline-only)" >&2
    exit 1
fi

# initdb refuses to run as root, so as root the server runs as the postgres user.
RUN_AS=()
if [ "$(id -u)" = 0 ]; then
    RUN_AS=(runuser -u postgres --)
fi

WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/segment_bench.XXXXXX")
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

if [ "${#RUN_AS[@]}" -gt 0 ]; then
    chown postgres: "$WORK_DIR"
fi
cd "$WORK_DIR"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log "initdb in $DATA_DIR, port $PORT"
"${RUN_AS[@]}" "$PG_BIN/initdb" -D "$DATA_DIR" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
    --no-instructions >"$WORK_DIR/initdb.log" 2>&1 || { cat "$WORK_DIR/initdb.log" >&2; exit 1; }
"${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$DATA_DIR" -l "$SERVER_LOG" -w -o "-p $PORT -k $WORK_DIR" start >/dev/null
SERVER_STARTED=1

psql_run() {
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$WORK_DIR" -p "$PORT" -U postgres -d postgres "$@"
}
psql_value() {
    psql_run -At -c "$1"
}

# ---------------------------------------------------------------------------------------------------------
# Data: one generated message per line. The raw line is the request body that gets signed; jsonb is what
# segment_parse receives.
# ---------------------------------------------------------------------------------------------------------
log "generating $ROWS messages (seed $SEED)"
python3 "$BENCH_DIR/gen_events.py" --count "$ROWS" --seed "$SEED" --out "$WORK_DIR/messages.jsonl"

if [ "$BASELINE_ONLY" = 0 ]; then
    psql_run -c 'CREATE EXTENSION segment_webhook;'
fi
psql_run -c 'CREATE EXTENSION pgcrypto;'

log "loading"
psql_run <<'SQL'
CREATE TABLE raw_lines (id bigserial PRIMARY KEY, line text NOT NULL);

-- Four sources, each with its own shared secret, as a workspace with several webhook destinations has.
CREATE TABLE secrets (source int PRIMARY KEY, secret text NOT NULL);
INSERT INTO secrets
SELECT n, encode(sha256(convert_to('bench secret ' || n, 'UTF8')), 'base64') FROM generate_series(0, 3) AS n;

-- STORAGE PLAIN keeps every value inline and uncompressed (rows stay under a page), so no query pays for
-- TOAST decompression and the timings are about the functions.
CREATE TABLE verify_bytea (id bigint, body bytea, sig text, secret text, secret_key bytea);
CREATE TABLE verify_text (id bigint, body text, sig text, secret text);
CREATE TABLE parse_messages (id bigint, msg jsonb);
ALTER TABLE verify_bytea ALTER body SET STORAGE PLAIN, ALTER sig SET STORAGE PLAIN,
    ALTER secret SET STORAGE PLAIN, ALTER secret_key SET STORAGE PLAIN;
ALTER TABLE verify_text ALTER body SET STORAGE PLAIN, ALTER sig SET STORAGE PLAIN, ALTER secret SET STORAGE PLAIN;
ALTER TABLE parse_messages ALTER msg SET STORAGE PLAIN;
SQL
# CSV with delimiter and quote bytes that JSON never contains raw, so COPY keeps every backslash as it is.
psql_run -c "COPY raw_lines (line) FROM STDIN WITH (FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02')" \
    <"$WORK_DIR/messages.jsonl"
psql_run <<'SQL'
-- The valid signatures come from pgcrypto, an implementation independent of the extension.
INSERT INTO verify_bytea
SELECT r.id, convert_to(r.line, 'UTF8'), encode(hmac(convert_to(r.line, 'UTF8'), convert_to(s.secret, 'UTF8'), 'sha1'), 'hex'),
       s.secret, convert_to(s.secret, 'UTF8')
FROM raw_lines r JOIN secrets s ON s.source = r.id % 4 ORDER BY r.id;
INSERT INTO verify_text SELECT id, convert_from(body, 'UTF8'), sig, secret FROM verify_bytea ORDER BY id;
INSERT INTO parse_messages SELECT id, line::jsonb FROM raw_lines ORDER BY id;
DROP TABLE raw_lines;
VACUUM (FREEZE, ANALYZE) verify_bytea, verify_text, parse_messages;
SQL

# ---------------------------------------------------------------------------------------------------------
# The contenders. Within a pair, "ours" and "theirs" return the same answer when they compute the same
# values; "floor" is the table scan alone; a "part" times one piece of a contender, to explain the result.
# ---------------------------------------------------------------------------------------------------------
PARSE_SQL_TEXT_COLUMNS="msg ->> 'messageId' AS message_id, msg ->> 'type' AS type, msg ->> 'event' AS event,
       msg ->> 'name' AS name, msg ->> 'category' AS category, msg ->> 'userId' AS user_id,
       msg ->> 'anonymousId' AS anonymous_id, msg ->> 'groupId' AS group_id, msg ->> 'previousId' AS previous_id"
PARSE_SQL_TIME_COLUMNS="COALESCE((msg ->> 'timestamp')::timestamptz,
                (msg ->> 'receivedAt')::timestamptz
                    - ((msg ->> 'sentAt')::timestamptz - (msg ->> 'originalTimestamp')::timestamptz),
                (msg ->> 'originalTimestamp')::timestamptz) AS \"timestamp\",
       (msg ->> 'originalTimestamp')::timestamptz AS original_timestamp, (msg ->> 'sentAt')::timestamptz AS sent_at,
       (msg ->> 'receivedAt')::timestamptz AS received_at"
PARSE_SQL_JSONB_COLUMNS="msg -> 'context' AS context, msg -> 'properties' AS properties, msg -> 'traits' AS traits,
       msg -> 'integrations' AS integrations"
PARSE_SQL_COLUMNS="$PARSE_SQL_TEXT_COLUMNS, $PARSE_SQL_TIME_COLUMNS, $PARSE_SQL_JSONB_COLUMNS"

# The same consumer for every parse contender. It names all 17 output columns, so the planner can drop none
# of them (it replaces subquery outputs that nothing reads with NULL), and num_nonnulls reads each one in
# O(1), so consuming costs both sides the same. Whether the values agree is checked above, column by column.
ALL_COLUMNS='message_id, type, event, name, category, user_id, anonymous_id, group_id, previous_id, "timestamp",
       original_timestamp, sent_at, received_at, context, properties, traits, integrations'
CONSUME_ALL="count(*), sum(num_nonnulls($ALL_COLUMNS))"
CONSUME_ALL_FIELDS="count(*), sum(num_nonnulls($(echo "$ALL_COLUMNS" | sed -E 's/([a-z_"]+)/(p).\1/g')))"

PLAN=$WORK_DIR/plan.tsv
: >"$PLAN"
contender() { # pair, key, role, label, query
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$(printf '%s' "$5" | tr '\n' ' ' | tr -s ' ')" >>"$PLAN"
}
if [ "$BASELINE_ONLY" = 0 ]; then
    contender verify_bytea ours ours "segment_verify(bytea, text, text)" \
        "SELECT count(*) FROM verify_bytea WHERE segment_verify(body, sig, secret)"
fi
contender verify_bytea theirs theirs "pgcrypto: encode(hmac(body, key, 'sha1'), 'hex') = sig" \
    "SELECT count(*) FROM verify_bytea WHERE encode(hmac(body, secret_key, 'sha1'), 'hex') = sig"
contender verify_bytea floor floor "table scan alone" \
    "SELECT count(*) FROM verify_bytea WHERE octet_length(body) > 0 AND sig IS NOT NULL AND secret IS NOT NULL"
if [ "$BASELINE_ONLY" = 0 ]; then
    contender verify_bytea ours_fixed part "part: segment_verify on a 2-byte body (per-call cost)" \
        "SELECT count(*) FROM verify_bytea WHERE segment_verify('\\x7b7d'::bytea, sig, secret)"
fi
contender verify_bytea theirs_fixed part "part: pgcrypto on a 2-byte body (per-call cost)" \
    "SELECT count(*) FROM verify_bytea WHERE encode(hmac('\\x7b7d'::bytea, secret_key, 'sha1'), 'hex') = sig"
if [ "$BASELINE_ONLY" = 0 ]; then
    contender verify_text ours ours "segment_verify(text, text, text)" \
        "SELECT count(*) FROM verify_text WHERE segment_verify(body, sig, secret)"
fi
contender verify_text theirs theirs "pgcrypto: encode(hmac(body, secret, 'sha1'), 'hex') = sig" \
    "SELECT count(*) FROM verify_text WHERE encode(hmac(body, secret, 'sha1'), 'hex') = sig"
contender verify_text floor floor "table scan alone" \
    "SELECT count(*) FROM verify_text WHERE octet_length(body) > 0 AND sig IS NOT NULL AND secret IS NOT NULL"
if [ "$BASELINE_ONLY" = 0 ]; then
    contender parse ours_lateral ours "segment_parse(msg) in FROM (LATERAL)" \
        "SELECT $CONSUME_ALL FROM parse_messages AS m CROSS JOIN LATERAL segment_parse(m.msg) AS p"
    contender parse ours_composite ours "segment_parse(msg) as a composite value" \
        "SELECT $CONSUME_ALL_FIELDS FROM (SELECT segment_parse(msg) AS p FROM parse_messages OFFSET 0) AS s"
fi
contender parse theirs theirs "SQL: ->>, ->, ::timestamptz, COALESCE rule" \
    "SELECT $CONSUME_ALL FROM (SELECT $PARSE_SQL_COLUMNS FROM parse_messages OFFSET 0) AS p"
contender parse floor floor "table scan alone" \
    "SELECT count(*), sum(num_nonnulls(msg)) FROM parse_messages"
if [ "$BASELINE_ONLY" = 0 ]; then
    contender parse ours_call part "part: segment_parse(msg) called, no column read" \
        "SELECT count(*), count(p) FROM (SELECT segment_parse(msg) AS p FROM parse_messages OFFSET 0) AS s"
fi
contender parse sql_text_jsonb part "part: SQL, the 9 text and 4 jsonb columns only" \
    "SELECT count(*), sum(num_nonnulls(message_id, type, event, name, category, user_id, anonymous_id, group_id,
            previous_id, context, properties, traits, integrations))
     FROM (SELECT $PARSE_SQL_TEXT_COLUMNS, $PARSE_SQL_JSONB_COLUMNS FROM parse_messages OFFSET 0) AS p"
contender parse sql_times part "part: SQL, the 4 timestamptz columns only" \
    "SELECT count(*), sum(num_nonnulls(\"timestamp\", original_timestamp, sent_at, received_at))
     FROM (SELECT $PARSE_SQL_TIME_COLUMNS FROM parse_messages OFFSET 0) AS p"

# ---------------------------------------------------------------------------------------------------------
# Correctness first: the timings mean nothing if the answers are wrong.
# ---------------------------------------------------------------------------------------------------------
CHECKS_FILE=$WORK_DIR/checks.txt
: >"$CHECKS_FILE"
CHECK_FAILED=0
check() { # name, query returning the number of rows that break the expectation
    local failures
    failures=$(psql_value "$2")
    printf '%-62s %s\n' "$1" "$([ "$failures" = 0 ] && echo ok || echo "FAILED ($failures rows)")" |
        tee -a "$CHECKS_FILE" >&2
    [ "$failures" = 0 ] || CHECK_FAILED=1
}
log "checking answers"
if [ "$BASELINE_ONLY" = 0 ]; then
    for table in verify_bytea verify_text; do
        check "$table: segment_verify true for every valid signature" \
            "SELECT count(*) FROM $table WHERE segment_verify(body, sig, secret) IS NOT TRUE"
        check "$table: segment_verify false for a tampered signature" \
            "SELECT count(*) FROM $table
             WHERE segment_verify(body, left(sig, 39) || CASE right(sig, 1) WHEN '0' THEN '1' ELSE '0' END, secret)
                   IS NOT FALSE"
        check "$table: segment_verify false for a tampered body" \
            "SELECT count(*) FROM $table WHERE segment_verify(body || ' ', sig, secret) IS NOT FALSE"
        check "$table: segment_verify false for a wrong secret" \
            "SELECT count(*) FROM $table WHERE segment_verify(body, sig, secret || 'x') IS NOT FALSE"
        check "$table: segment_sign equals pgcrypto's hex HMAC-SHA1" \
            "SELECT count(*) FROM $table WHERE segment_sign(body, secret) IS DISTINCT FROM sig"
    done
    if [ "$CHECK_FAILED" != 0 ]; then
        echo "segment_verify or segment_sign gave a wrong answer: not timing anything" >&2
        exit 1
    fi
    PARSE_MISMATCHES=$(psql_run -At -F ' ' <<SQL
SELECT column_name, count(*) FILTER (WHERE differs)
FROM parse_messages AS m
     CROSS JOIN LATERAL segment_parse(m.msg) AS p
     CROSS JOIN LATERAL (SELECT $PARSE_SQL_COLUMNS) AS s
     CROSS JOIN LATERAL (VALUES
        ('message_id', p.message_id IS DISTINCT FROM s.message_id), ('type', p.type IS DISTINCT FROM s.type),
        ('event', p.event IS DISTINCT FROM s.event), ('name', p.name IS DISTINCT FROM s.name),
        ('category', p.category IS DISTINCT FROM s.category), ('user_id', p.user_id IS DISTINCT FROM s.user_id),
        ('anonymous_id', p.anonymous_id IS DISTINCT FROM s.anonymous_id),
        ('group_id', p.group_id IS DISTINCT FROM s.group_id),
        ('previous_id', p.previous_id IS DISTINCT FROM s.previous_id),
        ('timestamp', p."timestamp" IS DISTINCT FROM s."timestamp"),
        ('original_timestamp', p.original_timestamp IS DISTINCT FROM s.original_timestamp),
        ('sent_at', p.sent_at IS DISTINCT FROM s.sent_at), ('received_at', p.received_at IS DISTINCT FROM s.received_at),
        ('context', p.context IS DISTINCT FROM s.context), ('properties', p.properties IS DISTINCT FROM s.properties),
        ('traits', p.traits IS DISTINCT FROM s.traits), ('integrations', p.integrations IS DISTINCT FROM s.integrations)
     ) AS c (column_name, differs)
GROUP BY column_name HAVING count(*) FILTER (WHERE differs) > 0 ORDER BY column_name
SQL
)
    # A differing column means the two sides do not do the same work: the report says so beside the timings.
    printf '%-62s %s\n' "parse_messages: segment_parse equals the SQL extraction" \
        "$([ -z "$PARSE_MISMATCHES" ] && echo ok || echo "DIFFERS: $(echo "$PARSE_MISMATCHES" | paste -sd, -)")" |
        tee -a "$CHECKS_FILE" >&2
fi
check "verify_bytea: pgcrypto side accepts every valid signature" \
    "SELECT count(*) FROM verify_bytea WHERE encode(hmac(body, secret_key, 'sha1'), 'hex') IS DISTINCT FROM sig"
check "verify_text: pgcrypto side accepts every valid signature" \
    "SELECT count(*) FROM verify_text WHERE encode(hmac(body, secret, 'sha1'), 'hex') IS DISTINCT FROM sig"
[ "$CHECK_FAILED" = 0 ] || exit 1

# ---------------------------------------------------------------------------------------------------------
# Timing: one warm-up pass (round 0, not counted), then ROUNDS rounds. In each round every pair runs all its
# queries back to back, in reverse order every other round, so drift on a shared machine hits each side alike.
# ---------------------------------------------------------------------------------------------------------
SCRIPT=$WORK_DIR/timing.sql
{
    printf '%s\n' '\pset tuples_only on' '\pset format unaligned' 'SET max_parallel_workers_per_gather = 0;' \
        'SET jit = off;' '\timing on'
    for round in $(seq 0 "$ROUNDS"); do
        for pair in verify_bytea verify_text parse; do
            if [ $((round % 2)) = 1 ]; then order="cat"; else order="tac"; fi
            awk -F '\t' -v pair="$pair" '$1 == pair' "$PLAN" | "$order" |
                while IFS=$'\t' read -r _ key _ _ query; do
                    printf '\\echo @@ %s %s %s\n%s;\n' "$round" "$pair" "$key" "$query"
                done
        done
    done
} >"$SCRIPT"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "timing: 1 warm-up pass + $ROUNDS rounds"
psql_run -f "$SCRIPT" >"$WORK_DIR/timing.out"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------
LIBRARY=$("$PG_BIN/pg_config" --pkglibdir)/segment_webhook.so
{
    echo "date:        $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "host:        nproc=$(nproc), CPU $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), memory $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "load:        load average $LOAD_BEFORE before timing, $LOAD_AFTER after"
    echo "postgres:    $(psql_value 'SELECT version()')"
    echo "extensions:  $(psql_value "SELECT string_agg(extname || ' ' || extversion, ', ' ORDER BY extname) FROM pg_extension WHERE extname <> 'plpgsql'")"
    if [ "$BASELINE_ONLY" = 0 ]; then
        echo "library:     $LIBRARY, built $(date -u -r "$LIBRARY" '+%Y-%m-%d %H:%M:%S UTC'), sha256 $(sha256sum "$LIBRARY" | cut -c1-16)"
        echo "functions:   $(psql_value "SELECT string_agg(format('%s %s, %s', oid::regprocedure,
            CASE provolatile WHEN 'i' THEN 'immutable' WHEN 's' THEN 'stable' ELSE 'volatile' END,
            CASE proparallel WHEN 's' THEN 'parallel safe' WHEN 'r' THEN 'parallel restricted' ELSE 'parallel unsafe' END),
            '; ' ORDER BY oid::regprocedure::text) FROM pg_proc WHERE proname IN ('segment_verify', 'segment_sign', 'segment_parse')")"
    fi
    echo "data:        $ROWS messages from bench/gen_events.py --seed $SEED; body bytes avg $(psql_value 'SELECT round(avg(octet_length(body))) FROM verify_bytea'), min $(psql_value 'SELECT min(octet_length(body)) FROM verify_bytea'), max $(psql_value 'SELECT max(octet_length(body)) FROM verify_bytea')"
    echo "tables:      verify_bytea $(psql_value "SELECT pg_size_pretty(pg_table_size('verify_bytea'))"), verify_text $(psql_value "SELECT pg_size_pretty(pg_table_size('verify_text'))"), parse_messages $(psql_value "SELECT pg_size_pretty(pg_table_size('parse_messages'))"); shared_buffers $(psql_value 'SHOW shared_buffers')"
    if command -v openssl >/dev/null; then
        echo "reference:   openssl speed, HMAC-SHA1 over 1024-byte inputs: $(openssl speed -elapsed -seconds 1 -hmac sha1 -bytes 1024 2>/dev/null |
            awk '/^hmac/ {v = $NF; sub(/k$/, "", v); printf "%.0f MB/s, %.2f us per KiB", v / 1000, 1024 / (v * 1000) * 1e6}')"
    fi
    echo "settings:    cluster defaults; benchmark session: max_parallel_workers_per_gather = 0, jit = off"
    echo "method:      1 warm-up pass, then $ROUNDS rounds, order reversed every other round; median of the rounds"
} >"$WORK_DIR/header.txt"

python3 - "$PLAN" "$WORK_DIR/timing.out" "$ROWS" >"$WORK_DIR/report.txt" <<'PY'
import re
import statistics
import sys

plan_path, timing_path, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
titles = {"verify_bytea": "signature check, bytea body", "verify_text": "signature check, text body",
          "parse": "message parse, all 17 columns read"}
targets = {"verify_bytea": 1.5, "verify_text": 1.5, "parse": 3.0}

plan = []
for line in open(plan_path, encoding="utf-8"):
    pair, key, role, label, _ = line.rstrip("\n").split("\t", 4)
    plan.append((pair, key, role, label))

times, answers = {}, {}
current = None
for line in open(timing_path, encoding="utf-8"):
    line = line.rstrip("\n")
    if line.startswith("@@ "):
        _, round_number, pair, key = line.split()
        current = (int(round_number), pair, key)
        continue
    match = re.match(r"Time: ([0-9.]+) ms", line)
    if match and current is not None:
        if current[0] > 0:
            times.setdefault(current[1:], {})[current[0]] = float(match.group(1))
        current = None
    elif current is not None and line.strip():
        answers.setdefault(current[1:], set()).add(line.strip())

for pair in ("verify_bytea", "verify_text", "parse"):
    entries = [entry for entry in plan if entry[0] == pair]
    print("%s (%s)" % (pair, titles[pair]))
    medians = {}
    for _, key, role, label in entries:
        samples = times[(pair, key)]
        median = statistics.median(samples.values())
        medians[key] = median
        print("  %-56s %8.1f ms %9.0f rows/s   rounds: %s" % (
            label, median, rows / (median / 1000.0), " ".join("%.0f" % samples[r] for r in sorted(samples))))
    theirs = "theirs"
    for _, key, role, label in entries:
        if role != "ours":
            continue
        ratio = medians[theirs] / medians[key]
        per_round = statistics.median(times[(pair, theirs)][r] / times[(pair, key)][r] for r in times[(pair, key)])
        verdict = "met" if ratio >= targets[pair] else "NOT met"
        text = "  %s is %.2fx faster (median of per-round ratios %.2fx; target >= %.1fx: %s)" % (
            label, ratio, per_round, targets[pair], verdict)
        floor = medians.get("floor")
        if floor is not None and medians[key] > floor and medians[theirs] > floor:
            text += "; above the scan floor %.2fx" % ((medians[theirs] - floor) / (medians[key] - floor))
        print(text)
        if answers.get((pair, key)) != answers.get((pair, theirs)):
            print("  WARNING: different answers: %s %s, theirs %s" % (
                key, sorted(answers.get((pair, key), [])), sorted(answers.get((pair, theirs), []))))
    print()
PY

RESULT_TEXT=$(
    echo "segment_webhook SQL functions benchmark (bench/sql_functions.sh)"
    cat "$WORK_DIR/header.txt"
    echo
    echo "checks:"
    sed 's/^/  /' "$CHECKS_FILE"
    echo
    cat "$WORK_DIR/report.txt"
)
echo "$RESULT_TEXT"
if [ "$BASELINE_ONLY" = 0 ]; then
    mkdir -p "$BENCH_DIR/results"
    RESULT_FILE=$BENCH_DIR/results/sql_functions-$(date -u +%Y-%m-%d).txt
    echo "$RESULT_TEXT" >"$RESULT_FILE"
    log "results written to $RESULT_FILE"
fi
