#!/usr/bin/env python3
"""The report of bench/floods.sh: reads the figures bench/floods_driver.py wrote (--json) and prints the good
client's latency per phase, the slowloris outcomes, the worker's memory, CPU and sockets per phase, and the
answers beyond max_connections; then one "CHECK FAILED" line for each failure of the run itself (exit 1).
Targets (p99 < 100 ms, bounded memory) are reported, not asserted. Standard library only.

    floods_report.py FIGURES.json
"""

import json
import statistics
import sys
from types import SimpleNamespace


def percentile(values, share):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def report(flood, facts):
    o = flood.options
    out = []
    good = flood.good_results
    out.append("good client: %d keep-alive connection(s), %g signed single-event POSTs per second, latency "
               "from the time each was due (service time: from its send)" % (o.good_connections, o.rate))
    out.append("  %-26s %6s %8s %8s %8s %8s %9s   %s" % ("phase", "sent", "p50 ms", "p99 ms", "max ms",
                                                          "svc p99", "late p99", "answers"))
    for label, text in (("baseline", "baseline (alone)"),
                        ("flood", "flood (idle + slowloris)"),
                        ("full", "max_connections reached")):
        r = good[label]
        out.append("  %-26s %6d %8.2f %8.2f %8.2f %8.2f %9.2f   %s%s" % (
            text, r["sent"], r["from_due"]["p50"], r["from_due"]["p99"], r["from_due"]["max"],
            r["service"]["p99"], r["send_lag"]["p99"], json.dumps(r["statuses"], sort_keys=True),
            ", %d reconnects" % r["reconnects"] if r["reconnects"] else ""))
    out.append("  svc: from the send to the whole answer; late: how late the client woke up for a request it "
               "was waiting to send (its own wait for a CPU)")
    p99 = good["flood"]["from_due"]["p99"]
    out.append("  p99 under the flood %.2f ms: target < 100 ms %s" % (p99, "met" if p99 < 100 else "NOT met"))
    out.append("")
    out.append("idle keep-alive connections: %d opened (each sent one event and got its answer) in %.1f s, "
               "%d held to the end of the flood, %d closed by the server; failures %s" % (
                   o.idle, facts["idle_open_seconds"], facts["idle_still_held"], flood.idle_closed_by_server,
                   json.dumps(facts["idle_failures"]) if facts["idle_failures"] else "none"))
    answered = flood.slowloris_seconds
    out.append("slowloris: %d connections, one header byte per second, reconnecting; outcomes %s; connect to "
               "answer median %.1f s, max %.1f s" % (
                   o.slowloris, json.dumps(flood.slowloris_outcomes, sort_keys=True),
                   statistics.median(answered) if answered else float("nan"),
                   max(answered) if answered else float("nan")))
    out.append("")

    out.append("worker (/proc/<pid>/status, every second; MB; sockets: the worker's socket descriptors; CPU: the "
               "worker's; waited: share of the time the worker was runnable but waiting for a CPU, from "
               "/proc/<pid>/schedstat; driver: the flood process's own CPU)")
    out.append("  %-18s %7s %7s %9s %8s %11s %8s %6s %7s %7s" % (
        "phase", "seconds", "samples", "VmRSS max", "RssAnon", "RssAnon max", "sockets", "CPU", "waited",
        "driver"))
    phases = []
    for sample in flood.samples:
        if not phases or phases[-1][0] != sample["phase"]:
            phases.append((sample["phase"], []))
        phases[-1][1].append(sample)
    for name, samples in phases:
        seconds = samples[-1]["t"] - samples[0]["t"]
        cpu = (samples[-1]["cpu"] - samples[0]["cpu"]) / seconds if seconds > 0 else float("nan")
        driver = (samples[-1]["driver_cpu"] - samples[0]["driver_cpu"]) / seconds if seconds > 0 else float("nan")
        waited = (samples[-1]["wait_ns"] - samples[0]["wait_ns"]) / 1e9 / seconds if seconds > 0 else float("nan")
        out.append("  %-18s %7.0f %7d %9.1f %8.1f %11.1f %8d %5.0f%% %6.0f%% %6.0f%%" % (
            name, seconds, len(samples), max(s["VmRSS"] for s in samples) / 1024, samples[-1]["RssAnon"] / 1024,
            max(s["RssAnon"] for s in samples) / 1024, max(s["sockets"] for s in samples), cpu * 100,
            waited * 100, driver * 100))
    first = flood.samples[0]
    idle_end = [s for s in flood.samples if s["phase"] == "idle"][-1]
    flood_samples = [s for s in flood.samples if s["phase"] == "flood"]
    per_connection = (idle_end["RssAnon"] - first["RssAnon"]) / max(idle_end["sockets"] - first["sockets"], 1)
    out.append("  heap per idle connection (RssAnon, idle phase against the start): %.1f kB" % per_connection)
    out.append("  during the flood: RssAnon %.1f MB at its start, %.1f MB at its end, VmHWM %.1f MB at the end "
               "of the run" % (flood_samples[0]["RssAnon"] / 1024, flood_samples[-1]["RssAnon"] / 1024,
                               flood.samples[-1]["VmHWM"] / 1024))
    series = " ".join("%.0f" % (s["RssAnon"] / 1024) for s in flood.samples[::5])
    out.append("  RssAnon every 5 s over the run, MB: " + series)
    out.append("")

    probes = facts["probes"]
    outcomes = {}
    for probe in probes:
        outcomes[probe["outcome"]] = outcomes.get(probe["outcome"], 0) + 1
    refused = [p for p in probes if p["outcome"] == "503 too_many_connections"]
    out.append("beyond max_connections (%d): %d held connections added until one was refused (%s), %d worker "
               "sockets then" % (o.max_connections, facts["fillers"], json.dumps(facts["fill_statuses"]),
                                 facts["connections_at_full"]))
    out.append("  %d new connections, each sending its request at once: %s" % (
        len(probes), json.dumps(outcomes, sort_keys=True)))
    if refused:
        answer = [p["answer_ms"] for p in refused]
        closed = [p["closed_ms"] for p in refused if p["closed_ms"] is not None]
        out.append("  time from connect() to the whole 503: p50 %.2f ms, p99 %.2f ms, max %.2f ms" % (
            percentile(answer, 0.5), percentile(answer, 0.99), max(answer)))
        out.append("  then closed by the server: %d of %d, by FIN %d, by RST %d; connect() to the close p99 %.2f ms" % (
            len(closed), len(refused), sum(p["closed"] == "FIN" for p in refused),
            sum(p["closed"] == "RST" for p in refused), percentile(closed, 0.99)))
    return "\n".join(out)


def checks(flood, facts):
    """Failures of the run itself (not of a target): a list of sentences."""
    failures = []
    for label, result in flood.good_results.items():
        bad = {k: v for k, v in result["statuses"].items() if k != "200"}
        if bad:
            failures.append("the good client got answers other than 200 (%s): %s" % (label, bad))
    if facts["idle_failures"]:
        failures.append("idle connections failed to open: %s" % facts["idle_failures"])
    if not any(p["outcome"] == "503 too_many_connections" for p in facts["probes"]):
        failures.append("no connection beyond max_connections was answered 503 too_many_connections")
    return failures


def main():
    with open(sys.argv[1]) as f:
        data = json.load(f)
    flood = SimpleNamespace(options=SimpleNamespace(**data["options"]), good_results=data["good"],
                            samples=data["samples"], slowloris_outcomes=data["slowloris_outcomes"],
                            slowloris_seconds=data["slowloris_seconds"],
                            idle_closed_by_server=data["idle_closed_by_server"])
    print(report(flood, data["facts"]))
    failures = checks(flood, data["facts"])
    for failure in failures:
        print("CHECK FAILED: " + failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
