#!/usr/bin/env python3
"""Helpers of bench/ingest.sh: CPU and memory readings from /proc, the per-scenario check, and the report.

Subcommands (standard library only):
  cpu PID                      seconds of CPU (utime+stime, plus reaped children's) of the process tree of PID
  memory PID LABEL CONNS       one JSON line with VmRSS, VmHWM, RssAnon, RssFile, RssShmem of PID (kB)
  copy-result ROWS EXPECTED T0 T1 CPU0 CPU1
                               one JSON line for a COPY scenario, shaped like the driver's output
  record NAME ROUND JSON ROWS REJECTED "XID LSN BATCHES" "XID LSN BATCHES"
                               the scenario's outcome, checked: valid only when every answer was 2xx, the table
                               holds exactly the distinct messages sent, the answers' "accepted" add up to it
                               and nothing went to segment_rejected
  line                         one readable line for a recorded scenario (JSON on stdin)
  report RESULTS WORK_DIR      the tables, ratios, curves, memory and profile summary
"""

import json
import os
import re
import statistics
import sys

TARGET_P2_EVENTS = 25000
TARGET_P2_OVER_R = 5.0
TARGET_P1_OVER_L = 1.0
TARGET_P99_MS = 50.0
TARGET_RSS_MB = 64.0


def process_table():
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                data = f.read().decode("latin1")
        except OSError:
            continue
        fields = data[data.rindex(")") + 2:].split()
        # fields[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14..17.
        table[int(name)] = (int(fields[1]), sum(int(v) for v in fields[11:15]))
    return table


def tree_cpu_seconds(root):
    table = process_table()
    children = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    ticks, stack, seen = 0, [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen or pid not in table:
            continue
        seen.add(pid)
        ticks += table[pid][1]
        stack.extend(children.get(pid, []))
    return ticks / os.sysconf("SC_CLK_TCK")


def memory(pid, label, connections):
    values = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                values[key] = int(rest.split()[0])
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key == "Pss":
                    values["Pss"] = int(rest.split()[0])
    except OSError:
        pass
    values.update({"memory": label, "connections": connections, "pid": pid})
    return values


def check(name, data, rows, rejected):
    problems = []
    if "expected_unique" in data:
        if data.get("non_2xx", 0):
            problems.append("%d non-2xx answers" % data["non_2xx"])
        if data.get("errors", 0):
            problems.append("%d failed requests" % data["errors"])
        if rows != data["expected_unique"]:
            problems.append("%d rows stored, %d distinct messages acknowledged" % (rows, data["expected_unique"]))
        if "accepted" in data and data["accepted"] != rows:
            problems.append("answers accepted %d, table has %d" % (data["accepted"], rows))
        if "accepted" in data and data["accepted"] + data.get("duplicates", 0) != data["messages"]:
            problems.append("accepted + duplicates = %d, sent %d" % (data["accepted"] + data.get("duplicates", 0),
                                                                     data["messages"]))
    if rejected:
        problems.append("%d rows in segment_rejected" % rejected)
    return problems


def record(name, round_number, text, rows, rejected, before, after):
    data = json.loads(text)
    data.update({"scenario": name, "round": round_number, "rows": rows, "rejected_rows": rejected})
    if before and after:
        (xid0, lsn0, batches0), (xid1, lsn1, batches1) = (map(int, v.split()) for v in (before, after))
        data["transaction_ids"] = xid1 - xid0
        data["wal_bytes"] = lsn1 - lsn0
        if batches0 >= 0 and batches1 > batches0:
            data["worker_commits"] = batches1 - batches0
    problems = check(name, data, rows, rejected)
    data["valid"] = not problems
    data["problems"] = problems
    return data


def copy_result(rows, expected, t0, t1, cpu0, cpu1):
    elapsed = t1 - t0
    return {"messages": rows, "expected_unique": expected, "requests": 0, "elapsed_s": elapsed,
            "events_per_s": rows / elapsed if elapsed > 0 else 0, "non_2xx": 0, "errors": 0,
            "cpu_s": {"postgres": cpu1 - cpu0}}


def describe(data):
    text = "%-26s round %s: %7d events in %7.2f s = %8.0f events/s" % (
        data["scenario"], data["round"], data.get("messages", 0), data.get("elapsed_s", 0),
        data.get("events_per_s", 0))
    if data.get("requests"):
        text += ", p50 %.1f ms, p99 %.1f ms, max %.1f ms" % (data["p50_ms"], data["p99_ms"], data["max_ms"])
    if data.get("transaction_ids"):
        text += "; %.1f events/commit, %.0f WAL bytes/event" % (
            events_per_commit(data), data.get("wal_bytes", 0) / max(data.get("messages", 1), 1))
    text += "; rows %d, rejected %d" % (data["rows"], data["rejected_rows"])
    text += "; check: ok" if data["valid"] else "; INVALID: " + "; ".join(data["problems"])
    return text


def cpu_per_event_us(data):
    # "worker" is part of the postmaster's tree: count the trees "postgres" and "node" only.
    cpu = sum(v for k, v in data.get("cpu_s", {}).items() if k in ("postgres", "node"))
    return cpu / data["messages"] * 1e6 if data.get("messages") else 0.0


def busy_percent(data, key):
    """CPU seconds of `key` (worker, node, driver) per second of the run, in percent of one core."""
    elapsed = data.get("elapsed_s") or 0
    value = data.get("driver_cpu_s") if key == "driver" else data.get("cpu_s", {}).get(key)
    return None if value is None or elapsed <= 0 else 100.0 * value / elapsed


def percent_text(value):
    return "-" if value is None else "%.0f%%" % value


def wall_time_text(data):
    """Where the worker's wall time went during the run, from /proc/<pid>/syscall sampled every millisecond."""
    samples = data.get("syscall_samples") or {}
    total = sum(samples.values())
    if not total:
        return "-"
    groups = {"running": 0, "epoll_wait": 0, "fdatasync": 0}
    other = 0
    for name, count in samples.items():
        if name in ("epoll_wait", "epoll_pwait"):
            groups["epoll_wait"] += count
        elif name in ("fdatasync", "fsync"):
            groups["fdatasync"] += count
        elif name in groups:
            groups[name] += count
        else:
            other += count
    return "run %2.0f%% wait %2.0f%% sync %2.0f%% other %2.0f%%" % (
        100.0 * groups["running"] / total, 100.0 * groups["epoll_wait"] / total,
        100.0 * groups["fdatasync"] / total, 100.0 * other / total)


def events_per_commit(data):
    """The worker's commits (segment_webhook_stats) when it served the scenario, else transaction ids: R and L use
    one per transaction."""
    commits = data.get("worker_commits") or data.get("transaction_ids")
    return data.get("messages", 0) / commits if commits else 0.0


def has_requests(name):
    return name not in ("L_batched", "L_single")


LABELS = {
    "P1": "P1 webhook, 500-message arrays",
    "L_batched": "L  COPY, one per 500 rows",
    "L_single": "L  COPY, all rows at once",
    "P2": "P2 webhook, single messages",
    "R_P2": "R  Node receiver, P2 load",
    "R_P1": "R  Node receiver, P1 load",
}


def median_of(rows, key):
    values = [r[key] for r in rows if key in r]
    return statistics.median(values) if values else float("nan")


def report(results_path, work_dir):
    records, memories = [], []
    for line in open(results_path, encoding="utf-8"):
        item = json.loads(line)
        (memories if "memory" in item else records).append(item)
    out = []
    invalid = [r for r in records if not r["valid"]]
    out.append("checks: %d scenario runs verified (rows = distinct messages acknowledged, all answers 2xx, "
               "answers' accepted = rows, segment_rejected empty): %s" % (
                   len(records), "all ok" if not invalid else "%d INVALID" % len(invalid)))
    for r in invalid:
        out.append("  INVALID %s round %s: %s" % (r["scenario"], r["round"], "; ".join(r["problems"])))
    out.append("")

    by_name = {}
    for r in records:
        by_name.setdefault(r["scenario"], []).append(r)
    out.append("main scenarios (median of the rounds; every round's events/s in brackets)")
    out.append("  %-34s %10s %9s %8s %8s %8s %10s %7s %7s %9s %8s  %s" % (
        "scenario", "events/s", "req/s", "p50 ms", "p99 ms", "max ms", "CPU us/ev", "server", "driver", "ev/commit",
        "WAL B/ev", "rounds"))
    medians = {}
    for name in ("P1", "L_batched", "L_single", "P2", "R_P2", "R_P1"):
        runs = [r for r in by_name.get(name, []) if r["round"] > 0]
        if not runs:
            continue
        m = {key: median_of(runs, key) for key in ("events_per_s", "requests_per_s", "p50_ms", "p99_ms", "max_ms")}
        m["cpu_us"] = statistics.median(cpu_per_event_us(r) for r in runs)
        server_key = "node" if name.startswith("R_") else "worker"
        busy = [busy_percent(r, server_key) for r in runs]
        m["server_busy"] = statistics.median(busy) if None not in busy else None
        m["per_xact"] = statistics.median(events_per_commit(r) for r in runs)
        m["wal_per_event"] = statistics.median(r.get("wal_bytes", 0) / r["messages"] for r in runs)
        m["driver_busy"] = statistics.median(busy_percent(r, "driver") or 0 for r in runs) if has_requests(name) else None
        m["rounds"] = {r["round"]: r["events_per_s"] for r in runs}
        m["valid"] = all(r["valid"] for r in runs)
        medians[name] = m
        has_latency = name not in ("L_batched", "L_single")
        cpu_detail = ""
        if name.startswith("R_"):
            pg = statistics.median(r["cpu_s"].get("postgres", 0) / r["messages"] * 1e6 for r in runs)
            node = statistics.median(r["cpu_s"].get("node", 0) / r["messages"] * 1e6 for r in runs)
            cpu_detail = " (postgres %.1f + node %.1f)" % (pg, node)
        out.append("  %-34s %10.0f %9s %8s %8s %8s %10.1f %7s %7s %9.1f %8.0f  [%s]%s%s" % (
            LABELS[name], m["events_per_s"],
            "%.0f" % m["requests_per_s"] if has_latency else "-",
            "%.2f" % m["p50_ms"] if has_latency else "-",
            "%.2f" % m["p99_ms"] if has_latency else "-",
            "%.1f" % m["max_ms"] if has_latency else "-",
            m["cpu_us"], percent_text(m["server_busy"]), percent_text(m["driver_busy"]), m["per_xact"],
            m["wal_per_event"], " ".join("%.0f" % m["rounds"][k] for k in sorted(m["rounds"])),
            cpu_detail, "" if m["valid"] else "  INVALID"))
    out.append("  CPU us/ev: CPU time of all Postgres processes (plus node for R) per event, the driver's not included;")
    out.append("  server: CPU of the segment_webhook worker (node for R) in % of one core; driver: the load driver's;")
    out.append("  ev/commit: events per commit (the worker's batches_committed; for R and L, transaction ids used);")
    out.append("  WAL B/ev: WAL bytes per event")
    out.append("")

    def per_round_ratio(a, b):
        ra, rb = medians[a]["rounds"], medians[b]["rounds"]
        common = sorted(set(ra) & set(rb))
        return statistics.median(ra[k] / rb[k] for k in common) if common else float("nan")

    out.append("targets (ratio of the medians; median of the per-round ratios in brackets)")

    def verdict(ok):
        return "met" if ok else "NOT met"

    if "P1" in medians and "L_batched" in medians:
        ratio = medians["P1"]["events_per_s"] / medians["L_batched"]["events_per_s"]
        out.append("  P1 / L (COPY per 500 rows):        %.2fx [%.2fx]   target >= %.1fx: %s" % (
            ratio, per_round_ratio("P1", "L_batched"), TARGET_P1_OVER_L, verdict(ratio >= TARGET_P1_OVER_L)))
    if "P1" in medians and "L_single" in medians:
        ratio = medians["P1"]["events_per_s"] / medians["L_single"]["events_per_s"]
        out.append("  P1 / L (one COPY of all rows):     %.2fx [%.2fx]   (for reference)" % (
            ratio, per_round_ratio("P1", "L_single")))
    if "P2" in medians:
        value = medians["P2"]["events_per_s"]
        out.append("  P2 events/s:                       %.0f = %.2fx of %d   target >= %d: %s" % (
            value, value / TARGET_P2_EVENTS, TARGET_P2_EVENTS, TARGET_P2_EVENTS, verdict(value >= TARGET_P2_EVENTS)))
        p99 = medians["P2"]["p99_ms"]
        out.append("  P2 p99 latency:                    %.1f ms = %.2fx of %d ms   target < %d ms: %s" % (
            p99, p99 / TARGET_P99_MS, TARGET_P99_MS, TARGET_P99_MS, verdict(p99 < TARGET_P99_MS)))
    if "P2" in medians and "R_P2" in medians:
        ratio = medians["P2"]["events_per_s"] / medians["R_P2"]["events_per_s"]
        out.append("  P2 / R (same P2 load):             %.2fx [%.2fx]   target >= %.1fx: %s" % (
            ratio, per_round_ratio("P2", "R_P2"), TARGET_P2_OVER_R, verdict(ratio >= TARGET_P2_OVER_R)))
    if "P1" in medians and "R_P1" in medians:
        ratio = medians["P1"]["events_per_s"] / medians["R_P1"]["events_per_s"]
        out.append("  P1 / R (same P1 load):             %.2fx [%.2fx]   (for reference)" % (
            ratio, per_round_ratio("P1", "R_P1")))
    held = [m for m in memories if m["memory"] == "idle_connections"]
    if held:
        rss_mb = held[-1]["VmRSS"] / 1024
        out.append("  worker VmRSS, %d idle connections: %.1f MB = %.2fx of %d MB   target <= %d MB: %s "
                   "(fresh worker; see below)" % (
                       held[-1]["connections"], rss_mb, rss_mb / TARGET_RSS_MB, TARGET_RSS_MB, TARGET_RSS_MB,
                       verdict(rss_mb <= TARGET_RSS_MB)))
    out.append("")

    curves = [("batch_delay", "curve_delay_", "ms"), ("connections", "curve_connections_", "")]
    for title, prefix, unit in curves:
        points = [r for r in records if r["scenario"].startswith(prefix)]
        if not points:
            continue
        out.append("curve: P2 against %s (one point each, at most the requests or seconds the run allows)" % title)
        out.append("  %-12s %10s %9s %8s %8s %8s %10s %7s %7s %9s %9s  %s" % (
            title, "events/s", "req/s", "p50 ms", "p99 ms", "max ms", "CPU us/ev", "worker", "driver", "ev/commit",
            "requests", "worker wall time"))
        for r in points:
            value = r["scenario"][len(prefix):]
            out.append("  %-12s %10.0f %9.0f %8.2f %8.2f %8.1f %10.1f %7s %7s %9.1f %9d  %s%s" % (
                value, r["events_per_s"], r["requests_per_s"], r["p50_ms"], r["p99_ms"], r["max_ms"],
                cpu_per_event_us(r), percent_text(busy_percent(r, "worker")), percent_text(busy_percent(r, "driver")),
                events_per_commit(r), r["requests"], wall_time_text(r), "" if r["valid"] else "  INVALID"))
        out.append("  worker wall time: /proc/<pid>/syscall sampled every ms: running, blocked in epoll_wait "
                   "(waiting for requests or")
        out.append("  the batch_delay timer), in fdatasync/fsync (commit), other system calls")
        out.append("")

    if memories:
        labels = {"after_runs": "long-running worker, idle, after the runs",
                  "fresh_idle": "fresh worker (restarted), idle",
                  "idle_connections": "fresh worker, %d idle keep-alive conns"}
        out.append("worker memory (/proc/<pid>/status and smaps_rollup of the 'segment_webhook worker' backend, MB)")
        out.append("  %-44s %7s %7s %7s %8s %7s %7s" % ("when", "VmRSS", "RssAnon", "RssFile", "RssShmem", "Pss",
                                                       "VmHWM"))
        for m in memories:
            label = labels.get(m["memory"], m["memory"])
            if "%d" in label:
                label = label % m["connections"]
            out.append("  %-44s %7.1f %7.1f %7.1f %8.1f %7.1f %7.1f" % (
                label, m["VmRSS"] / 1024, m.get("RssAnon", 0) / 1024, m.get("RssFile", 0) / 1024,
                m.get("RssShmem", 0) / 1024, m.get("Pss", 0) / 1024, m.get("VmHWM", 0) / 1024))
        out.append("  RssAnon: the worker's own heap; RssShmem: pages of shared memory (shared_buffers, ...) it has "
                   "touched, counted in VmRSS")
        out.append("  although they are not its own; Pss shares those among the processes that map them")
        fresh = [m for m in memories if m["memory"] == "fresh_idle"]
        if fresh and held:
            per_connection = (held[-1].get("RssAnon", 0) - fresh[-1].get("RssAnon", 0)) / max(held[-1]["connections"], 1)
            out.append("  heap per idle connection (RssAnon difference): %.1f kB" % per_connection)
        out.append("")

    for load in ("P2", "P1"):
        profile = profile_summary(work_dir, load)
        if profile:
            out.extend(profile)
            out.append("")
    print("\n".join(out).rstrip())


# Inclusive shares of these functions say where the worker's time goes (names as perf shows them).
KEY_FUNCTIONS = [
    ("HTTP in: HttpServer::poll (accept, recv, parse)", r"segment::HttpServer::poll$"),
    ("  recv", r"^__libc_recv$"),
    ("HTTP out: HttpServer::write_to (send answers)", r"segment::HttpServer::write_to$"),
    ("  epoll_ctl (interest changes)", r"^epoll_ctl$|__GI_epoll_ctl"),
    ("request check: segment::decide", r"^segment::decide$"),
    ("  RapidJSON validation: segment::check_json", r"^segment::check_json$"),
    ("  HMAC-SHA1: segment::verify_signature", r"^segment::verify_signature$"),
    ("batch: flush_pending (one transaction)", r"flush_pending$"),
    ("  body to jsonb: jsonb_in", r"^jsonb_in$"),
    ("    pg_parse_json (Postgres's JSON parser)", r"^pg_parse_json$"),
    ("  body to jsonb: segment_pg::json_to_jsonb", r"json_to_jsonb$"),
    ("  ingest_queue_body (split, validate, columns)", r"ingest_queue_body$"),
    ("    JsonbValueToJsonb (one jsonb per message)", r"^JsonbValueToJsonb$"),
    ("  ingest_batch_flush (writing the batch's rows)", r"ingest_batch_flush$"),
    ("    insert_events_directly (COPY-style path)", r"insert_events_directly$"),
    ("      heap_multi_insert", r"^heap_multi_insert$"),
    ("      ExecInsertIndexTuples (index entries)", r"^ExecInsertIndexTuples$"),
    ("      table_slot_create (a slot per row)", r"^table_slot_create$"),
    ("    SPI_execute_plan (INSERT ... ON CONFLICT path)", r"^SPI_execute_plan$"),
    ("      construct_md_array (array parameters)", r"^construct_md_array$"),
    ("      heap_insert", r"^heap_insert$"),
    ("    ExecCheckIndexConstraints (duplicate probe, both paths)", r"^ExecCheckIndexConstraints$"),
    ("    pglz_compress (TOAST compression of payload)", r"^pglz_compress$"),
    ("    btinsert (index inserts, both indexes)", r"^btinsert$"),
    ("    nextval_internal (identity column)", r"^nextval_internal$"),
    ("    XLogInsert (WAL records)", r"^XLogInsert$"),
    ("  CommitTransactionCommand", r"^CommitTransactionCommand$"),
    ("    XLogFlush (WAL write + fdatasync)", r"^XLogFlush$"),
    ("wait: WaitEventSetWait", r"^WaitEventSetWait$"),
    ("page faults (first touch of fresh memory)", r"^asm_exc_page_fault$"),
    ("malloc/free", r"^(malloc|free|_int_malloc|_int_free|cfree@GLIBC_2.2.5|__libc_malloc|__libc_free)$"),
    ("memmove/memcpy", r"^__mem(move|cpy)_\w+$"),
    ("memset", r"^__memset_\w+$"),
]


def clean_symbol(text):
    return re.sub(r"\s+-\s+-\s*$", "", text).strip()


def profile_summary(work_dir, load):
    self_path = os.path.join(work_dir, "perf_%s_self.txt" % load)
    children_path = os.path.join(work_dir, "perf_%s_children.txt" % load)
    if not os.path.exists(self_path):
        return []
    samples = 0
    for line in open(self_path, encoding="utf-8", errors="replace"):
        match = re.match(r"# Samples: (\S+)", line)
        if match:
            text = match.group(1)
            samples = float(text[:-1]) * 1000 if text.endswith("K") else float(text)
    busy = ""
    run = None
    for line in open(os.path.join(work_dir, "results.jsonl"), encoding="utf-8"):
        item = json.loads(line)
        if item.get("scenario") == "profile_%s" % load:
            run = item
    if run is not None:
        busy = "; worker on CPU %s of the run, %.0f events/s under perf; wall time: %s" % (
            percent_text(busy_percent(run, "worker")), run["events_per_s"], wall_time_text(run))
    lines = ["profile of the worker during %s (perf record --call-graph dwarf, about %d samples%s)" % (
        load, samples, busy)]
    lines.append("  top symbols by self time (share of the worker's samples):")
    count = 0
    for line in open(self_path, encoding="utf-8", errors="replace"):
        match = re.match(r"\s+([0-9.]+)%\s+(\S+)\s+\[([.k])\]\s+(.*)$", line)
        if not match:
            continue
        percent, dso, _, symbol = match.groups()
        lines.append("    %6s%%  %-20s %s" % (percent, dso[:20], clean_symbol(symbol)[:100]))
        count += 1
        if count >= 25:
            break
    if os.path.exists(children_path):
        inclusive = []
        for line in open(children_path, encoding="utf-8", errors="replace"):
            match = re.match(r"\s+([0-9.]+)%\s+([0-9.]+)%\s+\[([.k])\]\s+(.*)$", line)
            if match:
                inclusive.append((float(match.group(1)), clean_symbol(match.group(4))))
        lines.append("  inclusive share (self + callees) of key functions:")
        for label, pattern in KEY_FUNCTIONS:
            found = [p for p, symbol in inclusive if re.search(pattern, symbol)]
            lines.append("    %7s  %s" % ("%.1f%%" % max(found) if found else "-", label))
    chains_path = os.path.join(work_dir, "perf_%s_chains.txt" % load)
    if os.path.exists(chains_path):
        lines.append("  callers of the hottest symbols (perf report -g caller, symbols over 2%, chains over 1.5%):")
        kept = 0
        for line in open(chains_path, encoding="utf-8", errors="replace"):
            line = re.sub(r"\s+-\s+-\s*$", "", line.rstrip())
            if not line.strip() or line.startswith("#") or re.fullmatch(r"[\s|]*", line):
                continue
            lines.append("    " + line[:150])
            kept += 1
            if kept >= 110:
                lines.append("    ...")
                break
    return lines


def main(argv):
    command = argv[1]
    if command == "cpu":
        print("%.3f" % tree_cpu_seconds(int(argv[2])))
    elif command == "memory":
        print(json.dumps(memory(int(argv[2]), argv[3], int(argv[4]))))
    elif command == "copy-result":
        rows, expected = int(argv[2]), int(argv[3])
        t0, t1, cpu0, cpu1 = (float(v) for v in argv[4:8])
        print(json.dumps(copy_result(rows, expected, t0, t1, cpu0, cpu1)))
    elif command == "record":
        print(json.dumps(record(argv[2], int(argv[3]), argv[4], int(argv[5]), int(argv[6]), argv[7], argv[8])))
    elif command == "line":
        print(describe(json.loads(sys.stdin.read())))
    elif command == "report":
        report(argv[2], argv[3])
    else:
        raise SystemExit("unknown command %s" % command)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
