#!/usr/bin/env bash
# Two builds of segment_webhook side by side on the ingest benchmark: the working tree and an earlier commit
# (default: the parent of the first 0.2 commit). Each round installs one build, runs bench/ingest.sh's main
# scenarios once (P1: 500-message arrays; P2: single messages), then the other build, alternating which goes
# first, so that both see the same machine at nearly the same time. The report gives each round's figures and
# the ratio of the medians (this build / the other). The working tree's build is installed again at the end.
#
# With --base-version V the two sides are one build, the working tree's, with the extension created at version V
# for the base (for instance 0.4, whose segment_events is not partitioned) and at the default version for head.
#
# Usage: bash bench/compare_builds.sh [--base REV | --base-version V] [--rounds R] [--p1-messages N]
#                                     [--p2-messages N] [--name NAME] [--no-save]
# Needs what bench/ingest.sh needs, plus git. Writes bench/results/compare-<NAME>-<date>.txt (NAME: the base's
# revision, or at-<version>) unless --no-save.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
BASE=7f86ece
ROUNDS=3
P1_MESSAGES=100000
P2_MESSAGES=50000
SAVE=1
BASE_VERSION=
NAME=
while [ $# -gt 0 ]; do
    case "$1" in
        --base) BASE=$2; shift 2 ;;
        --base-version) BASE_VERSION=$2; shift 2 ;;
        --name) NAME=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --p1-messages) P1_MESSAGES=$2; shift 2 ;;
        --p2-messages) P2_MESSAGES=$2; shift 2 ;;
        --no-save) SAVE=0; shift ;;
        -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { print }' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done

WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/segment_compare.XXXXXX")
cleanup() {
    local status=$?
    make -C "$REPO_DIR" -s install PG_CONFIG="$PG_CONFIG" >/dev/null 2>&1 || true
    git -C "$REPO_DIR" worktree remove --force "$WORK_DIR/base" >/dev/null 2>&1 || true
    rm -rf "$WORK_DIR"
    exit "$status"
}
trap cleanup EXIT
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

HEAD_NAME="working tree at $(git -C "$REPO_DIR" rev-parse --short HEAD)"
BASE_DIR=$WORK_DIR/base
BASE_ARGS=()
if [ -n "$BASE_VERSION" ]; then
    log "building the working tree"
    make -C "$REPO_DIR" -s -j"$(nproc)" PG_CONFIG="$PG_CONFIG" >/dev/null
    BASE_DIR=$REPO_DIR
    BASE_ARGS=(--extension-version "$BASE_VERSION")
    BASE_NAME="$HEAD_NAME, extension created at version $BASE_VERSION"
    HEAD_NAME="$HEAD_NAME, extension created at its default version"
    NAME=${NAME:-at-$BASE_VERSION}
else
    log "building the working tree and $BASE"
    git -C "$REPO_DIR" worktree add --detach "$WORK_DIR/base" "$BASE" >/dev/null 2>&1
    make -C "$WORK_DIR/base" -s -j"$(nproc)" PG_CONFIG="$PG_CONFIG" >/dev/null
    make -C "$REPO_DIR" -s -j"$(nproc)" PG_CONFIG="$PG_CONFIG" >/dev/null
    BASE_NAME="$BASE ($(git -C "$REPO_DIR" log -1 --format=%s "$BASE" | cut -c1-50))"
    NAME=${NAME:-$BASE}
fi

# run_build DIR LABEL [ingest.sh options]: installs the build in DIR and appends "LABEL P1 P2 P2p99" to the
# figures.
run_build() {
    local dir=$1 label=$2
    shift 2
    make -C "$dir" -s install PG_CONFIG="$PG_CONFIG" >/dev/null
    log "round $round: $label"
    local output
    output=$(bash "$BENCH_DIR/ingest.sh" --no-node --no-curves --no-profile --no-save --rounds 1 "$@" \
        --p1-messages "$P1_MESSAGES" --p2-messages "$P2_MESSAGES" 2>"$WORK_DIR/ingest.log") ||
        { tail -20 "$WORK_DIR/ingest.log" >&2; return 1; }
    grep -q 'all ok' <<<"$output" || { echo "$output" >&2; echo "the benchmark's checks failed" >&2; return 1; }
    local p1 p2 p99
    p1=$(awk '/P1 webhook, 500-message arrays/ { print $5 }' <<<"$output")
    p2=$(awk '/P2 webhook, single messages/ { print $5 }' <<<"$output")
    p99=$(awk '/P2 webhook, single messages/ { print $8 }' <<<"$output")
    echo "$label $p1 $p2 $p99" >>"$WORK_DIR/figures"
}

: >"$WORK_DIR/figures"
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then
        run_build "$BASE_DIR" base "${BASE_ARGS[@]}"
        run_build "$REPO_DIR" head
    else
        run_build "$REPO_DIR" head
        run_build "$BASE_DIR" base "${BASE_ARGS[@]}"
    fi
done

REPORT=$(python3 - "$WORK_DIR/figures" "$BASE_NAME" "$HEAD_NAME" <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
def column(label, index):
    return [float(r[index]) for r in rows if r[0] == label]
print(f"base: {sys.argv[2]}")
print(f"head: {sys.argv[3]}")
print()
print(f"{'figure':<28}{'base (each round)':<34}{'head (each round)':<34}{'head/base (medians)'}")
for name, index in (("P1 events/s", 1), ("P2 events/s", 2), ("P2 p99 ms", 3)):
    base, head = column("base", index), column("head", index)
    ratio = statistics.median(head) / statistics.median(base)
    print(f"{name:<28}{' '.join(f'{v:g}' for v in base):<34}{' '.join(f'{v:g}' for v in head):<34}{ratio:.2f}x")
EOF
)
HEADER="segment_webhook: two builds side by side on bench/ingest.sh (P1 $P1_MESSAGES messages, P2 $P2_MESSAGES)
date:  $(date -u '+%Y-%m-%d %H:%M UTC'), nproc=$(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
load:  $(cut -d' ' -f1-3 /proc/loadavg) at the end; $ROUNDS rounds, the order alternating"
printf '%s\n\n%s\n' "$HEADER" "$REPORT"
if [ "$SAVE" = 1 ]; then
    mkdir -p "$BENCH_DIR/results"
    printf '%s\n\n%s\n' "$HEADER" "$REPORT" >"$BENCH_DIR/results/compare-$NAME-$(date -u +%Y-%m-%d).txt"
fi
