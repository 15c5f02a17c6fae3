#!/usr/bin/env python3
"""The flood benchmark's driver (bench/floods.sh): a good client's latency while the worker holds thousands of
idle keep-alive connections and slowloris connections, the worker's memory meanwhile, and the answer to a
connection beyond segment_webhook.max_connections. Python 3 asyncio, standard library only.

    floods_driver.py run  --port P --write-key K --secret S --messages FILE --worker-pid PID [options]
    floods_driver.py good --port P --write-key K --secret S --messages FILE --first I --seconds T --rate R

"run" does the three phases in one process and writes the figures to --json (bench/floods_report.py reads them); the good client runs as a "good"
subprocess, so that the flood's own event loop never delays its requests or its clock. Latency is measured
from the time a request was due (request i is due at start + i / rate), not from when it could be sent, so a
stalled answer also counts against the requests queued behind it. Every messageId answered 200 is written to
--acked (one a line) for the caller's check that each one is stored.
"""

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import re
import sys
import time

SLOWLORIS_HEAD = (b"GET /health HTTP/1.1\r\nHost: flood\r\nUser-Agent: slowloris\r\nX-Padding: "
                  + b"a" * 8000)  # never completes within the run, and stays under max_header_size


class Messages:
    """The generated messages, handed out in order so that no message is sent twice."""

    def __init__(self, path, secret, first=0):
        with open(path, "rb") as f:
            self.lines = [line.rstrip(b"\n") for line in f if line.strip()]
        self.key = secret.encode()
        self.next = first

    def take(self):
        if self.next >= len(self.lines):
            raise SystemExit("floods_driver: out of messages (generate more)")
        body = self.lines[self.next]
        self.next += 1
        return body

    def request(self, path, body):
        signature = hmac.new(self.key, body, hashlib.sha1).hexdigest()
        return (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nX-Signature: %s\r\n\r\n" % (path.encode(), len(body), signature.encode())
                + body)


def message_id(body):
    return json.loads(body)["messageId"]


async def read_response(reader):
    """Status and body of one HTTP response (Content-Length framed, as the worker answers)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    body = await reader.readexactly(int(match.group(1))) if match else b""
    return status, head, body


def normal_priority():
    """The good client runs at the normal priority even when the flood runs below it (needs root)."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 0)
    except OSError:
        pass


def percentile(values, share):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def summary(values):
    return {"n": len(values), "p50": percentile(values, 0.50), "p99": percentile(values, 0.99),
            "max": max(values) if values else float("nan")}


# ---------------------------------------------------------------------------------------------------------
# The good client (subprocess)
# ---------------------------------------------------------------------------------------------------------

async def good_client(options):
    messages = Messages(options.messages, options.secret, options.first)
    path = "/v1/webhook?writeKey=" + options.write_key
    total = int(options.seconds * options.rate)
    bodies = [messages.take() for _ in range(total)]
    latencies, service, lag, statuses, acked, reconnects = [], [], [], {}, [], 0
    # Each connection is opened and used once before the clock starts (its first request is not timed), so it
    # is an established keep-alive connection even when the worker is full by the time the parent says "go".
    connections = []
    for _ in range(options.good_connections):
        reader, writer = await asyncio.open_connection("127.0.0.1", options.port)
        body = messages.take()
        writer.write(messages.request(path, body))
        status, _, answer = await read_response(reader)
        if status != 200 or json.loads(answer).get("accepted") != 1:
            raise SystemExit("floods_driver: the good client's first request got %s" % status)
        acked.append(message_id(body))
        connections.append((reader, writer))
    print("connected", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    start = time.monotonic() + 0.05

    async def connection(k):
        nonlocal reconnects
        reader, writer = connections[k]
        for i in range(k, total, options.good_connections):
            due = start + i / options.rate
            delay = due - time.monotonic()
            sent = time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
                sent = time.monotonic()
                lag.append((sent - due) * 1000)  # woke up late: this process waited for a CPU
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", options.port)
                writer.write(messages.request(path, bodies[i]))
                status, _, body = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError) as error:
                status = type(error).__name__
                writer, reconnects = None, reconnects + 1
            done = time.monotonic()
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if status == 200:
                latencies.append((done - due) * 1000)
                service.append((done - sent) * 1000)
                if json.loads(body).get("accepted") == 1:
                    acked.append(message_id(bodies[i]))
        connections[k] = (reader, writer)

    cpu = time.process_time()
    await asyncio.gather(*(connection(k) for k in range(options.good_connections)))
    print(json.dumps({"sent": total, "statuses": statuses, "from_due": summary(latencies),
                      "service": summary(service), "send_lag": summary(lag), "reconnects": reconnects,
                      "cpu_seconds": time.process_time() - cpu, "acked": acked}), flush=True)
    # Keep the connections open until the parent is done (phase 3 must not free their slots early).
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for _, writer in connections:
        if writer is not None:
            writer.close()


# ---------------------------------------------------------------------------------------------------------
# The flood
# ---------------------------------------------------------------------------------------------------------

class Flood:
    def __init__(self, options):
        self.options = options
        self.messages = Messages(options.messages, options.secret)
        self.path = "/v1/webhook?writeKey=" + options.write_key
        self.acked = []
        self.held = []  # (reader, writer) of the idle keep-alive connections and the fillers
        self.idle_closed_by_server = 0
        self.slowloris_open = 0
        self.slowloris_outcomes = {}  # "408" / "reset" / ... -> count
        self.slowloris_seconds = []  # connect to answer, per answered slowloris connection
        self.stop_slowloris = False
        self.samples = []  # per second: phase, t, VmRSS, VmHWM, RssAnon (kB), worker sockets, worker CPU s
        self.phase = "start"
        self.good_results = {}
        self.closing = False  # the driver closes the held connections itself

    def set_phase(self, phase):
        self.phase = phase
        print("[%s] phase: %s" % (time.strftime("%H:%M:%S"), phase), file=sys.stderr, flush=True)

    # -- /proc readings of the worker ------------------------------------------------------------------
    def worker_reading(self):
        pid = self.options.worker_pid
        reading = {"phase": self.phase, "t": time.monotonic()}
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssShmem"):
                    reading[key] = int(value.split()[0])
        sockets = 0
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                sockets += os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:")
            except OSError:
                pass
        reading["sockets"] = sockets
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        reading["cpu"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        with open("/proc/%d/schedstat" % pid) as f:  # ns on a CPU, ns runnable and waiting for one
            reading["run_ns"], reading["wait_ns"] = (int(v) for v in f.read().split()[:2])
        reading["driver_open"] = len(self.held) + self.slowloris_open
        reading["driver_cpu"] = time.process_time()
        return reading

    async def sample_forever(self):
        while True:
            self.samples.append(self.worker_reading())
            await asyncio.sleep(1)

    # -- connections -----------------------------------------------------------------------------------
    async def signed_request(self):
        """One connection that sends one signed event: (status, reader, writer, seconds to the answer)."""
        body = self.messages.take()
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", self.options.port)
        writer.write(self.messages.request(self.path, body))
        try:
            status, _, answer = await read_response(reader)
        except (OSError, asyncio.IncompleteReadError) as error:
            writer.close()
            return type(error).__name__, None, None, time.monotonic() - started
        if status == 200 and json.loads(answer).get("accepted") == 1:
            self.acked.append(message_id(body))
        return status, reader, writer, time.monotonic() - started

    async def hold(self, reader):
        """Watches a held connection: the server must not close it (idle_timeout is raised for the run)."""
        if await reader.read(1) == b"" and not self.closing:
            self.idle_closed_by_server += 1

    async def open_idle(self, count, concurrency=100):
        failures = {}
        semaphore = asyncio.Semaphore(concurrency)

        async def one():
            async with semaphore:
                try:
                    status, reader, writer, _ = await self.signed_request()
                except OSError as error:
                    status, reader, writer = type(error).__name__, None, None
                if status == 200:
                    self.held.append((reader, writer))
                    asyncio.ensure_future(self.hold(reader))
                else:
                    failures[str(status)] = failures.get(str(status), 0) + 1
                    if writer is not None:
                        writer.close()

        await asyncio.gather(*(one() for _ in range(count)))
        return failures

    async def slowloris(self):
        """One header byte per second; when the server answers or closes, note how and connect again."""
        await asyncio.sleep(random.random())
        while not self.stop_slowloris:
            started = time.monotonic()
            outcome = None
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.options.port)
            except OSError as error:
                outcome, writer = "connect " + type(error).__name__, None
            self.slowloris_open += writer is not None
            offset = 0
            while outcome is None and not self.stop_slowloris:
                try:
                    writer.write(SLOWLORIS_HEAD[offset:offset + 1])
                    offset += 1
                    data = await asyncio.wait_for(reader.read(4096), timeout=1.0)
                except asyncio.TimeoutError:
                    continue
                except OSError as error:
                    outcome = type(error).__name__
                    break
                if not data:
                    outcome = "closed without an answer"
                    break
                try:
                    data += await asyncio.wait_for(reader.read(), timeout=15)  # the rest, up to the close
                except (asyncio.TimeoutError, OSError):
                    pass
                outcome = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/1.") else "garbage"
                self.slowloris_seconds.append(time.monotonic() - started)
            if writer is not None:
                self.slowloris_open -= 1
                writer.close()
            if outcome is not None:
                self.slowloris_outcomes[outcome] = self.slowloris_outcomes.get(outcome, 0) + 1
                if outcome != "408":
                    await asyncio.sleep(1)  # an unexpected answer: do not hammer the server with reconnects

    async def good_start(self, label, seconds):
        """Starts the good client as a subprocess for `seconds`; returns once its connections are open."""
        first = self.messages.next
        self.messages.next += int(seconds * self.options.rate) + self.options.good_connections + 1
        process = await asyncio.create_subprocess_exec(
            sys.executable, os.path.abspath(__file__), "good", "--port", str(self.options.port),
            "--write-key=" + self.options.write_key, "--secret", self.options.secret,
            "--messages", self.options.messages, "--first", str(first), "--seconds", str(seconds),
            "--rate", str(self.options.rate), "--connections", str(self.options.good_connections),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, preexec_fn=normal_priority,
            limit=64 * 1024 * 1024)  # its result is one JSON line with every acknowledged messageId
        if await process.stdout.readline() != b"connected\n":
            raise SystemExit("floods_driver: the good client could not connect")
        return label, process

    async def good_finish(self, handle):
        """Lets the good client send and keeps its result; it holds its connections until released."""
        label, process = handle
        process.stdin.write(b"go\n")
        result = json.loads(await process.stdout.readline())
        self.acked.extend(result.pop("acked"))
        self.good_results[label] = result
        return process

    async def good_release(self, process):
        process.stdin.close()
        if await process.wait() != 0:
            raise SystemExit("floods_driver: the good client failed")

    async def good(self, label, seconds):
        await self.good_release(await self.good_finish(await self.good_start(label, seconds)))

    async def probe(self):
        """A new connection beyond max_connections, sending its request at once as a client would."""
        started = time.monotonic()
        body = self.messages.take()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.options.port)
        except OSError as error:
            return {"outcome": "connect " + type(error).__name__, "answer_ms": None}
        connected = time.monotonic()
        outcome, answer_ms, closed_ms, closed = None, None, None, None
        try:
            writer.write(self.messages.request(self.path, body))
            status, _, answer = await asyncio.wait_for(read_response(reader), timeout=5)
            answer_ms = (time.monotonic() - started) * 1000
            outcome = str(status)
            if status == 200 and json.loads(answer).get("accepted") == 1:
                self.acked.append(message_id(body))
            elif status == 503:
                outcome += " " + json.loads(answer)["error"]["code"]
                try:
                    await asyncio.wait_for(reader.read(), timeout=5)
                    closed = "FIN"
                except ConnectionResetError:
                    closed = "RST"
                closed_ms = (time.monotonic() - started) * 1000
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError, KeyError) as error:
            outcome = outcome or type(error).__name__
        writer.close()
        return {"outcome": outcome, "connect_ms": (connected - started) * 1000, "answer_ms": answer_ms,
                "closed_ms": closed_ms, "closed": closed}

    # -- the run ---------------------------------------------------------------------------------------
    async def run(self):
        o = self.options
        sampler = asyncio.ensure_future(self.sample_forever())
        await asyncio.sleep(1.5)
        facts = {}

        self.set_phase("baseline")
        await self.good("baseline", o.baseline_seconds)

        self.set_phase("opening")
        started = time.monotonic()
        facts["idle_failures"] = await self.open_idle(o.idle)
        facts["idle_open_seconds"] = time.monotonic() - started
        facts["idle_held"] = len(self.held)
        await asyncio.sleep(2)
        self.set_phase("idle")
        await asyncio.sleep(3)
        slowloris = [asyncio.ensure_future(self.slowloris()) for _ in range(o.slowloris)]
        self.set_phase("slowloris warm-up")
        await asyncio.sleep(o.warmup_seconds)
        self.set_phase("flood")
        await self.good("flood", o.flood_seconds)
        self.stop_slowloris = True
        await asyncio.gather(*slowloris)
        facts["idle_still_held"] = len(self.held) - self.idle_closed_by_server

        # Beyond max_connections: fill the worker up with held connections until a new one is refused, then
        # probe while the good client keeps sending on the connections it already has.
        self.set_phase("filling")
        good = await self.good_start("full", o.overflow_seconds)
        filled, fill_statuses = 0, {}
        for _ in range(o.max_connections):
            status, reader, writer, _ = await self.signed_request()
            fill_statuses[str(status)] = fill_statuses.get(str(status), 0) + 1
            if status != 200:
                if writer is not None:
                    writer.close()
                break
            self.held.append((reader, writer))
            asyncio.ensure_future(self.hold(reader))
            filled += 1
        facts["fillers"] = filled
        facts["fill_statuses"] = fill_statuses
        self.set_phase("full")
        good = asyncio.ensure_future(self.good_finish(good))
        probes = []
        await asyncio.sleep(1)
        for _ in range(o.probes):
            probes.append(await self.probe())
            await asyncio.sleep(max(0.0, (o.overflow_seconds - 2) / o.probes))
        facts["connections_at_full"] = self.worker_reading()["sockets"]
        await self.good_release(await good)
        facts["probes"] = probes

        self.set_phase("closed")
        self.closing = True
        for _, writer in self.held:
            writer.close()
        self.held = []
        await asyncio.sleep(3)
        self.samples.append(self.worker_reading())
        sampler.cancel()
        with open(o.acked, "w") as f:
            f.write("".join(message_id + "\n" for message_id in self.acked))
        return facts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("run", "good"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--write-key", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--messages", required=True, help="gen_events.py output, one message a line")
    parser.add_argument("--rate", type=float, default=100, help="good client requests per second (100)")
    parser.add_argument("--connections", dest="good_connections", type=int, default=4,
                        help="good client keep-alive connections (4)")
    parser.add_argument("--first", type=int, default=0, help="good: index of its first message")
    parser.add_argument("--seconds", type=float, default=10, help="good: how long it sends")
    parser.add_argument("--worker-pid", type=int)
    parser.add_argument("--idle", type=int, default=10000, help="idle keep-alive connections (10000)")
    parser.add_argument("--slowloris", type=int, default=1000, help="slowloris connections (1000)")
    parser.add_argument("--baseline-seconds", type=float, default=20)
    parser.add_argument("--warmup-seconds", type=float, default=12, help="slowloris before timing (12)")
    parser.add_argument("--flood-seconds", type=float, default=60)
    parser.add_argument("--overflow-seconds", type=float, default=20)
    parser.add_argument("--probes", type=int, default=200, help="connections beyond max_connections (200)")
    parser.add_argument("--max-connections", type=int, default=11100, help="the worker's setting")
    parser.add_argument("--flood-nice", type=int, default=10,
                        help="run: nice value of the flood's process (10); the good client keeps 0")
    parser.add_argument("--acked", help="run: file for the messageIds answered 200")
    parser.add_argument("--json", help="run: file for the figures, which bench/floods_report.py reports")
    options = parser.parse_args()
    if options.command == "good":
        asyncio.run(good_client(options))
        return 0
    if options.worker_pid is None or options.acked is None or options.json is None:
        parser.error("run needs --worker-pid, --acked and --json")
    if options.flood_nice:
        # The attackers' CPU time would be spent on their own machines: keep it from the worker's share here.
        os.nice(options.flood_nice)
    flood = Flood(options)
    facts = asyncio.run(flood.run())
    with open(options.json, "w") as f:
        json.dump({"options": vars(options), "facts": facts, "good": flood.good_results, "samples": flood.samples,
                   "slowloris_outcomes": flood.slowloris_outcomes, "slowloris_seconds": flood.slowloris_seconds,
                   "idle_closed_by_server": flood.idle_closed_by_server}, f)
    return 0

if __name__ == "__main__":
    sys.exit(main())
