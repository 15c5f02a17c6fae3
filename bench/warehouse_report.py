#!/usr/bin/env python3
"""The report of bench/warehouse.sh (standard library only).

Subcommands:
  ingest FIGURES    the on/off comparison: every run's figures, the ratio of the medians (on / off), the median of
                    the per-round ratios, the targets, and the discovery check of every run. FIGURES has one line
                    per ingest.sh run: round setting shown p1_events p1_p99 p1_cpu p2_events p2_p99 p2_cpu
                    examined_to max_event_id relations columns order_completed_columns revenue_type
                    latest_first_seen library_sha256
  dashboard SIZES CHECKS TIMING QUERIES
                    bytes on disk per event, the answer checks, and every query's median time with the ratio
                    view / plain
Prints "CHECK FAILED" where a check failed (bench/warehouse.sh then exits 1).
"""

import re
import statistics
import sys

TARGET_INGEST_RATIO = 0.95  # on >= 0.95x off, for P1 and for P2
TARGET_VIEW_RATIO = 2.0  # view <= 2x plain


def fmt(value):
    if value >= 1000:
        return "%.0f" % value
    if value >= 10:
        return "%.1f" % value
    return "%.2f" % value


def ingest(path):
    runs = []
    for line in open(path):
        f = line.split()
        if len(f) < 17:
            print("CHECK FAILED: incomplete figures of a run: %s" % line.strip())
            continue
        runs.append({
            "round": int(f[0]), "setting": f[1], "shown": f[2],
            "P1": [float(v) for v in f[3:6]], "P2": [float(v) for v in f[6:9]],
            "examined_to": int(f[9]), "max_id": int(f[10]),
            "relations": int(f[11]), "columns": int(f[12]), "oc_columns": int(f[13]), "revenue": f[14],
            "first_seen": f[15], "library": f[16],
        })
    by = {s: [r for r in runs if r["setting"] == s] for s in ("off", "on")}
    print("%-24s %-28s %-28s %10s %12s" % ("figure", "off (each round)", "on (each round)", "on / off", "per round"))
    verdicts = []
    for scenario, label in (("P1", "P1 (500-message arrays)"), ("P2", "P2 (single messages)")):
        for index, name in ((0, "events/s"), (2, "CPU us/event"), (1, "p99 ms")):
            off = [r[scenario][index] for r in by["off"]]
            on = [r[scenario][index] for r in by["on"]]
            if not off or not on:
                continue
            ratio = statistics.median(on) / statistics.median(off)
            rounds = sorted(set(r["round"] for r in runs))
            per_round = []
            for n in rounds:
                a = [r[scenario][index] for r in by["on"] if r["round"] == n]
                b = [r[scenario][index] for r in by["off"] if r["round"] == n]
                if a and b and b[0]:
                    per_round.append(a[0] / b[0])
            print("%-24s %-28s %-28s %9.2fx %11.2fx" % (
                "%s %s" % (scenario, name), " ".join(fmt(v) for v in off), " ".join(fmt(v) for v in on), ratio,
                statistics.median(per_round) if per_round else float("nan")))
            if index == 0:
                verdicts.append("  %s on >= %.2fx off: %.2fx (per-round median %.2fx): %s" % (
                    label, TARGET_INGEST_RATIO, ratio, statistics.median(per_round),
                    "met" if ratio >= TARGET_INGEST_RATIO else "NOT met"))
    print("  events/s over the whole scenario; CPU us/event: all Postgres processes of the cluster (the discovery")
    print("  worker included) per event; p99: request latency")
    print()
    print("targets (ratio of the medians)")
    for verdict in verdicts:
        print(verdict)
    print()
    print("discovery check after every run: examined_to of segment_warehouse_progress against the highest event id")
    print("right after the scenarios; segment_warehouse_schema('bench') 3 s later")
    for r in runs:
        if r["setting"] == "on":
            ok = r["shown"] == "on" and r["oc_columns"] > 0 and r["revenue"] != "-"
        else:
            ok = r["shown"] == "off" and r["oc_columns"] == 0
        print("  round %d, warehouse = %-3s (server: %s, library %s): examined to %d of %d; %d relations, %d columns; "
              "order_completed %d columns, revenue %s; latest first_seen %s UTC  %s" % (
                  r["round"], r["setting"], r["shown"], r["library"], r["examined_to"], r["max_id"], r["relations"],
                  r["columns"], r["oc_columns"], r["revenue"].replace("_", " "), r["first_seen"],
                  "ok" if ok else "CHECK FAILED"))
    print("  (on: order_completed must exist with a typed revenue column; off: no per-event relation discovered)")
    if len(set(r["library"] for r in runs)) > 1:
        print("  NOTE: the installed library changed between runs (see the hashes above)")


def read_pairs(path):
    rows = []
    for line in open(path):
        parts = line.rstrip("\n").split(" ")
        rows.append(parts)
    return rows


QUERY_NAMES = {
    "a": "a. orders per day, last 30 days (order_completed)",
    "b": "b. pages by campaign source, distinct urls, last 30 days (pages)",
    "b0": "b0. part of b: the rows alone, count(*) (pages)",
    "b1": "b1. part of b: both columns read, no DISTINCT (pages)",
}


def dashboard(sizes_path, checks_path, timing_path, queries_path):
    sizes = {}
    indexes = []
    for parts in read_pairs(sizes_path):
        key, value = " ".join(parts[:-1]), parts[-1]  # an index's name may hold spaces
        if key.startswith("index:"):
            indexes.append((key[6:], int(value)))
        else:
            sizes[key] = value
    rows = int(sizes["rows"])
    print("bytes on disk of segment_events (%d rows)" % rows)
    print("  %-52s %14s %12s" % ("part", "bytes", "per event"))
    parts = [("heap (main fork)", int(sizes["heap"])), ("TOAST (table and index)", int(sizes["toast"])),
             ("free space and visibility maps", int(sizes["fsm_vm"]))]
    parts += [("index " + name, size) for name, size in indexes]
    for name, size in parts:
        print("  %-52s %14d %12.1f" % (name, size, size / rows))
    total = int(sizes["total"])
    print("  %-52s %14d %12.1f" % ("total (pg_total_relation_size)", total, total / rows))
    print("  payload jsonb, average pg_column_size: %s bytes" % sizes["payload_avg"])
    for name in ("plain_order_completed", "plain_pages"):
        print("  %s: %s rows, %s columns, %d bytes (%.1f per row)" % (
            name, sizes["plainrows:" + name], sizes["columns:" + name], int(sizes["plain:" + name]),
            int(sizes["plain:" + name]) / max(1, int(sizes["plainrows:" + name]))))
    print("  web schema: %s relations, %s columns (segment_warehouse_schema('web'))" % (
        sizes["relations"], sizes["schema_columns"]))
    print()

    print("checks (one snapshot and one now() for both sides)")
    failed = False
    for line in open(checks_path):
        f = line.split()
        if f[0] in QUERY_NAMES:
            ok = f[1] == "0" and f[2] == "0"
            failed |= not ok
            print("  query %-3s view EXCEPT ALL plain: %s rows, plain EXCEPT ALL view: %s rows (%s result rows)  %s" % (
                f[0], f[1], f[2], f[3], "ok" if ok else "CHECK FAILED"))
        elif f[0] == "window_share":
            print("  %s: %s of %s rows in the last 30 days (%.0f%%)" % (f[1], f[2], f[3], 100.0 * int(f[2]) / max(1, int(f[3]))))
        elif f[0] == "timestamps":
            print("  segment_events.timestamp from %s to %s" % (" ".join(f[1:3]), " ".join(f[3:5])))
    print()

    texts = {}
    for line in open(queries_path):
        q, side, text = line.rstrip("\n").split("\t")
        texts[(q, side)] = text
    times = {}
    current = None
    for line in open(timing_path):
        match = re.match(r"@@ (-?\d+) (\S+) (\S+)", line)
        if match:
            current = (int(match.group(1)), match.group(2), match.group(3))
            continue
        match = re.match(r"Time: ([\d.]+) ms", line)
        if match and current is not None:
            run, q, side = current
            if run >= 1:
                times.setdefault((q, side), {})[run] = float(match.group(1))
            current = None
    print("query times, ms (median of the timed runs, warm; every run in brackets)")
    for q in ("a", "b", "b0", "b1"):
        view, plain = times.get((q, "view"), {}), times.get((q, "plain"), {})
        if not view or not plain:
            print("  %s: no timings  CHECK FAILED" % q)
            failed = True
            continue
        print("  %s" % QUERY_NAMES[q])
        for side, samples in (("view", view), ("plain", plain)):
            print("    %-6s %10.1f  [%s]  %s" % (side, statistics.median(samples.values()),
                                               " ".join("%.0f" % samples[r] for r in sorted(samples)), texts[(q, side)]))
        ratio = statistics.median(view.values()) / statistics.median(plain.values())
        per_run = statistics.median(view[r] / plain[r] for r in view if r in plain)
        target = ""
        if q in ("a", "b"):
            target = "; target <= %.1fx: %s" % (TARGET_VIEW_RATIO, "met" if ratio <= TARGET_VIEW_RATIO else "NOT met")
        print("    view / plain: %.2fx (median of per-run ratios %.2fx)%s" % (ratio, per_run, target))
    if failed:
        print("CHECK FAILED: see above")


def main(argv):
    if len(argv) >= 2 and argv[0] == "ingest":
        ingest(argv[1])
    elif len(argv) >= 5 and argv[0] == "dashboard":
        dashboard(*argv[1:5])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
