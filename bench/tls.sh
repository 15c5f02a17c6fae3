#!/usr/bin/env bash
# The cost of native TLS on the ingest port, in one run on one throwaway Postgres 15 cluster (created here and
# always removed): P2 (single signed messages over keep-alive connections, as in bench/ingest.sh) over plain
# HTTP and over HTTPS, alternating, with the worker restarted between the two (turning TLS on or off takes a
# worker restart: pg_terminate_backend, as the README says); then the same requests with `Connection: close`,
# so that every request pays for a new connection, and over HTTPS for a full handshake (no resumption): the
# difference in the worker's CPU per request is the cost of a handshake. Every run is checked (every answer
# 2xx, every message stored or a duplicate); the report gives each round and the medians.
#
# Usage: bash bench/tls.sh [--p2-messages N] [--rounds R] [--connections N] [--close-requests N] [--no-save]
#   --p2-messages N     messages of P2, one per request (default 50000)
#   --rounds R          rounds of P2 plain/HTTPS, order reversed every other round (default 3)
#   --connections N     keep-alive connections of P2 (default 64)
#   --close-requests N  requests of the connection-per-request runs (default 5000, over 16 connections)
# Environment: PG_BIN (default /usr/lib/postgresql/15/bin; the extension must be installed for it).
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
P2_MESSAGES=50000
ROUNDS=3
CONNECTIONS=64
CLOSE_REQUESTS=5000
SAVE=1
SEED=20240506
SECRET='bench-shared-secret-9f2c'
while [ $# -gt 0 ]; do
    case "$1" in
        --p2-messages) P2_MESSAGES=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --connections) CONNECTIONS=$2; shift 2 ;;
        --close-requests) CLOSE_REQUESTS=$2; shift 2 ;;
        --no-save) SAVE=0; shift ;;
        -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { print }' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done
for tool in initdb pg_ctl psql pg_config; do
    [ -x "$PG_BIN/$tool" ] || { echo "missing $PG_BIN/$tool: install postgresql-15" >&2; exit 1; }
done
for tool in python3 g++ curl openssl; do
    command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done
LIBRARY=$("$PG_BIN/pg_config" --pkglibdir)/segment_webhook.so
[ -f "$LIBRARY" ] || { echo "segment_webhook is not installed for $PG_BIN: run 'make install' first" >&2; exit 1; }
RUN_AS=()
if [ "$(id -u)" = 0 ]; then
    RUN_AS=(runuser -u postgres --)
fi
WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/segment_tls_bench.XXXXXX")
DATA_DIR=$WORK_DIR/data
SERVER_LOG=$WORK_DIR/server.log
SERVER_STARTED=0
cleanup() {
    local status=$?
    if [ "$SERVER_STARTED" = 1 ]; then
        [ "$status" = 0 ] || tail -n 30 "$SERVER_LOG" >&2 || true
        "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$DATA_DIR" -m fast -w stop >/dev/null 2>&1 || true
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

log "building the load driver"
g++ -O2 -std=c++17 -Wall -Wextra -o "$WORK_DIR/load_driver" "$BENCH_DIR/load_driver.cc" -lssl -lcrypto
DRIVER=$WORK_DIR/load_driver
log "generating and signing $P2_MESSAGES messages"
python3 "$BENCH_DIR/gen_events.py" --count "$P2_MESSAGES" --seed "$SEED" --retry-share 0.01 \
    --out "$WORK_DIR/messages.jsonl"
python3 "$BENCH_DIR/sign_requests.py" --secret "$SECRET" --in "$WORK_DIR/messages.jsonl" \
    --out "$WORK_DIR/p2.requests" >/dev/null

# A CA and a server certificate for 127.0.0.1 (P-256 ECDSA, the kind ACME issues by default nowadays).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj '/CN=bench CA' \
    -keyout "$WORK_DIR/ca.key" -out "$WORK_DIR/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj '/CN=localhost' \
    -keyout "$WORK_DIR/server.key" -out "$WORK_DIR/server.csr" 2>/dev/null
printf 'subjectAltName = IP:127.0.0.1, DNS:localhost\n' >"$WORK_DIR/server.ext"
openssl x509 -req -in "$WORK_DIR/server.csr" -CA "$WORK_DIR/ca.crt" -CAkey "$WORK_DIR/ca.key" -set_serial 1 \
    -days 2 -extfile "$WORK_DIR/server.ext" -out "$WORK_DIR/server.crt" 2>/dev/null

PGPORT_BENCH=$(free_port)
WEBHOOK_PORT=$(free_port)
log "initdb, Postgres on port $PGPORT_BENCH, webhook on 127.0.0.1:$WEBHOOK_PORT"
"${RUN_AS[@]}" "$PG_BIN/initdb" -D "$DATA_DIR" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
    --no-instructions >"$WORK_DIR/initdb.log" 2>&1 || { cat "$WORK_DIR/initdb.log" >&2; exit 1; }
cp "$WORK_DIR/server.crt" "$WORK_DIR/server.key" "$DATA_DIR/"
[ "${#RUN_AS[@]}" -eq 0 ] || chown postgres: "$DATA_DIR/server.crt" "$DATA_DIR/server.key"
chmod 0600 "$DATA_DIR/server.key"
cat >>"$DATA_DIR/postgresql.conf" <<CONF

# bench/tls.sh
shared_preload_libraries = 'segment_webhook'
segment_webhook.port = $WEBHOOK_PORT
CONF
"${RUN_AS[@]}" bash -c 'ulimit -Sn "$(ulimit -Hn)"; exec "$@"' limit \
    "$PG_BIN/pg_ctl" -D "$DATA_DIR" -l "$SERVER_LOG" -w -o "-p $PGPORT_BENCH -k $WORK_DIR" start >/dev/null
SERVER_STARTED=1
psql_value() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$WORK_DIR" -p "$PGPORT_BENCH" -U postgres -d postgres -c "$1"; }
psql_value 'CREATE EXTENSION segment_webhook' >/dev/null
WRITE_KEY=$(psql_value "SELECT segment_create_source('bench', '$SECRET')")
worker_pid() { psql_value "SELECT pid FROM pg_stat_activity WHERE backend_type = 'segment_webhook worker'"; }

# use_mode plain|tls: the TLS settings, then a restart of the worker (what turning TLS on or off takes).
use_mode() {
    local mode=$1 old_pid
    if [ "$mode" = tls ]; then
        psql_value "ALTER SYSTEM SET segment_webhook.ssl_cert_file = 'server.crt'" >/dev/null
        psql_value "ALTER SYSTEM SET segment_webhook.ssl_key_file = 'server.key'" >/dev/null
        HEALTH=(curl -s --cacert "$WORK_DIR/ca.crt" "https://127.0.0.1:$WEBHOOK_PORT/health")
        TLS_OPTION=(--tls "$WORK_DIR/ca.crt")
    else
        psql_value "ALTER SYSTEM RESET segment_webhook.ssl_cert_file" >/dev/null
        psql_value "ALTER SYSTEM RESET segment_webhook.ssl_key_file" >/dev/null
        HEALTH=(curl -s "http://127.0.0.1:$WEBHOOK_PORT/health")
        TLS_OPTION=()
    fi
    psql_value 'SELECT pg_reload_conf()' >/dev/null
    old_pid=$(worker_pid)
    psql_value "SELECT pg_terminate_backend($old_pid)" >/dev/null
    for _ in $(seq 1 100); do
        WORKER_PID=$(worker_pid)
        if [ -n "$WORKER_PID" ] && [ "$WORKER_PID" != "$old_pid" ] &&
            [ "$("${HEALTH[@]}" -o /dev/null -w '%{http_code}')" = 200 ]; then
            return 0
        fi
        sleep 0.1
    done
    echo "the worker did not come back healthy in $mode mode" >&2
    exit 1
}

# run_load LABEL MODE DRIVER-OPTIONS...: one checked run, appended to results.jsonl.
run_load() {
    local label=$1 mode=$2
    shift 2
    psql_value 'TRUNCATE segment_events' >/dev/null
    local output
    output=$("$DRIVER" --port "$WEBHOOK_PORT" --requests "$WORK_DIR/p2.requests" \
        --path "/v1/webhook?writeKey=$WRITE_KEY" --cpu "worker=$WORKER_PID" --duration 120 \
        "${TLS_OPTION[@]}" "$@" 2>"$WORK_DIR/driver.log") || { cat "$WORK_DIR/driver.log" >&2; exit 1; }
    local stored
    stored=$(psql_value 'SELECT count(*) FROM segment_events')
    python3 - "$label" "$mode" "$stored" "$output" >>"$WORK_DIR/results.jsonl" <<'EOF'
import json, sys
label, mode, stored, output = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
ok = (output["non_2xx"] == 0 and output["errors"] == 0
      and output["accepted"] + output["duplicates"] == output["messages"] and output["accepted"] == stored)
output.update(label=label, mode=mode, stored=stored, ok=ok)
print(json.dumps(output))
EOF
    log "$label ($mode): $(tail -n 1 "$WORK_DIR/driver.log" | sed 's/^load_driver: //')"
}

: >"$WORK_DIR/results.jsonl"
use_mode plain
log "warm-up"
run_load warmup plain --connections "$CONNECTIONS" --max-requests 5000
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then order="plain tls"; else order="tls plain"; fi
    for mode in $order; do
        use_mode "$mode"
        run_load P2 "$mode" --connections "$CONNECTIONS"
    done
done
for mode in plain tls; do
    use_mode "$mode"
    run_load close "$mode" --connections 16 --close --max-requests "$CLOSE_REQUESTS"
done

REPORT=$(python3 - "$WORK_DIR/results.jsonl" "$P2_MESSAGES" "$CONNECTIONS" "$CLOSE_REQUESTS" <<'EOF'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
messages, connections, close_requests = sys.argv[2], sys.argv[3], sys.argv[4]
def cpu_us(run):
    return run["cpu_s"]["worker"] / run["requests"] * 1e6 if run["requests"] else 0
lines = []
p2 = {mode: [r for r in runs if r["label"] == "P2" and r["mode"] == mode] for mode in ("plain", "tls")}
lines.append(f"P2: {messages} single-message requests over {connections} keep-alive connections, "
             "plain HTTP and HTTPS alternating (worker restarted between them)")
lines.append("| transport | events/s (median) | rounds | p50 | p99 | worker CPU per request |")
lines.append("| --- | --- | --- | --- | --- | --- |")
medians = {}
for mode, name in (("plain", "plain HTTP"), ("tls", "HTTPS (TLS 1.3, keep-alive)")):
    rs = p2[mode]
    median = statistics.median(r["events_per_s"] for r in rs)
    medians[mode] = median
    rounds = " / ".join("{:,.0f}".format(r["events_per_s"]) for r in rs)
    p50 = statistics.median(r["p50_ms"] for r in rs)
    p99 = statistics.median(r["p99_ms"] for r in rs)
    cpu = statistics.median(cpu_us(r) for r in rs)
    lines.append(f"| {name} | {median:,.0f} | {rounds} | {p50:.2f} ms | {p99:.2f} ms | {cpu:.1f} µs |")
ratio = medians["tls"] / medians["plain"]
per_round = ", ".join("{:.2f}".format(t["events_per_s"] / p["events_per_s"]) for p, t in zip(p2["plain"], p2["tls"]))
lines.append(f"HTTPS / plain: {ratio:.2f}x (per round: {per_round}); "
             f"target >= 0.7x: {'met' if ratio >= 0.7 else 'not met'}")
lines.append("")
close = {r["mode"]: r for r in runs if r["label"] == "close"}
lines.append(f"A new connection per request (Connection: close), {close_requests} requests over 16 connections; "
             "over HTTPS every connection makes a full handshake (ECDSA P-256, X25519, no resumption)")
lines.append("| transport | requests/s | worker CPU per request | handshakes |")
lines.append("| --- | --- | --- | --- |")
for mode, name in (("plain", "plain HTTP"), ("tls", "HTTPS")):
    r = close[mode]
    rate, handshakes = r["requests_per_s"], r["handshakes"]
    lines.append(f"| {name} | {rate:,.0f} | {cpu_us(r):.1f} µs | {handshakes:,} |")
handshake_us = cpu_us(close["tls"]) - cpu_us(close["plain"])
lines.append(f"Cost of a full handshake in the worker: {handshake_us:.0f} µs of CPU "
             "per connection (HTTPS minus plain, per request with a new connection each).")
bad = [r["label"] + " " + r["mode"] for r in runs if not r["ok"]]
lines.append("checks: " + ("all ok" if not bad else "INVALID: " + ", ".join(bad)))
print("\n".join(lines))
EOF
)
HEADER="bench/tls.sh, $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load average $(cut -d' ' -f1-3 /proc/loadavg); $("$PG_BIN/postgres" --version); $(openssl version)"
printf '%s\n\n%s\n' "$HEADER" "$REPORT"
if [ "$SAVE" = 1 ]; then
    mkdir -p "$BENCH_DIR/results"
    printf '%s\n\n%s\n' "$HEADER" "$REPORT" >"$BENCH_DIR/results/tls-$(date -u +%Y-%m-%d).txt"
fi
