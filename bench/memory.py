"""Benchmark: AgentCore Memory event writes and listings through boto3, emulator vs moto vs a do-nothing floor.

Runs three servers on 127.0.0.1, each as its own process (so none shares this client's GIL):

* the local emulator (``lab_helpers/emulator``), durable, on a temporary SQLite file;
* the same with local IAM on (``--iam``): every request's signature recomputed, each call evaluated against a
  principal's identity policies (a condition on ``bedrock-agentcore:actorId`` with ``${aws:username}``, and a Deny);
* a moto 5.2.5 server (``moto.server``, werkzeug, access log off);
* a canned-reply server (``http.server.ThreadingHTTPServer``, HTTP/1.1 keep-alive) that answers every CreateEvent
  with one fixed event and every ListEvents with one fixed 100-event page (a ``nextToken`` until the 20th page):
  what remains is boto3's own cost, the floor.

and prints, for each:

* CreateEvent events/s, sequential on one client (N events into one session, which is then the listing's session)
  and from T threads, each with its own boto3 client (and session), all started together;
* the time to list a 2,000-event session: every page at maxResults 100, includePayloads true (median of R runs).
  moto does not paginate (it truncates to maxResults and sends no nextToken), so for moto the figure is ONE
  ListEvents call without maxResults, which returns all 2,000 events at once.

Then, on the emulator alone (moto has no RetrieveMemoryRecords), the latency of RetrieveMemoryRecords over K
long-term records (default 10,000, written with BatchCreateMemoryRecords into 100 actors' namespaces of one
semantic strategy): Q queries of three words, topK 10, half scoped to one actor (``namespace``), half to every
actor (``namespacePath``); p50 and p99.

Then the ratios emulator/floor and emulator/moto, and the targets (met/missed; the exit status is 0 either way):
sequential CreateEvent at least 0.67x the floor, the full 2,000-event listing well under half a second, and
sequential CreateEvent with local IAM on within 1.5x of the time with it off (measured in the same run).

Usage: python bench/memory.py [--events N] [--threads T] [--per-thread M] [--runs R] [--records K] [--queries Q]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from tempfile import TemporaryDirectory

import boto3
from botocore.config import Config

from lab_helpers import config
from lab_helpers.processes import ServerProcess

from lab_helpers.agentcore import EMULATOR_SCRIPT
REGION = "us-east-1"
PAGE = 100
#: Targets: sequential CreateEvent within this fraction of the floor; the full listing under this many seconds.
TARGET_CREATE_RATIO = 0.67
TARGET_LISTING_SECONDS = 0.5
#: Target: CreateEvent with local IAM on takes at most this many times as long as with it off.
TARGET_IAM_SLOWDOWN = 1.5
#: The bench's principal under local IAM: the credentials ``_clients`` signs with, a scoped policy and a Deny.
IAM_PRINCIPALS = {"principals": [{"name": "bench", "accessKeyId": "testing", "secretAccessKey": "testing",
                                  "policies": [{"Version": "2012-10-17", "Statement": [
                                      {"Effect": "Allow", "Action": ["bedrock-agentcore:CreateMemory",
                                                                     "bedrock-agentcore:GetMemory"], "Resource": "*"},
                                      {"Effect": "Allow", "Action": ["bedrock-agentcore:CreateEvent",
                                                                     "bedrock-agentcore:ListEvents"],
                                       "Resource": "arn:aws:bedrock-agentcore:*:*:memory/*",
                                       "Condition": {"StringLike": {"bedrock-agentcore:actorId": "${aws:username}*"}}},
                                      {"Effect": "Deny", "Action": "bedrock-agentcore:Delete*", "Resource": "*"}]}]}]}

MOTO_SCRIPT = """\
import logging, sys
logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access-log line per request
from moto.server import main
main(sys.argv[1:])
"""

CANNED_SCRIPT = r'''
import argparse, json, re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EVENTS = int(__import__("os").environ.get("CANNED_EVENTS", "2000"))
PAGE = 100


def event(i):
    return {"memoryId": "bench-0123456789", "actorId": "bench", "sessionId": "canned",
            "eventId": "%019d#%08x" % (1700000000000 + i, i), "eventTimestamp": 1700000000.0 + i,
            "payload": [{"conversational": {"content": {"text": "message %d" % i}, "role": "USER"}}],
            "branch": {"name": "main"}}


CREATED = json.dumps({"event": event(0)}).encode()
PAGES = []
for number in range((EVENTS + PAGE - 1) // PAGE):
    body = {"events": [event(i) for i in range(number * PAGE, min(EVENTS, (number + 1) * PAGE))]}
    if (number + 1) * PAGE < EVENTS:
        body["nextToken"] = str(number + 1)
    PAGES.append(json.dumps(body).encode())
SESSION = re.compile(r"^/memories/[^/]+/actor/[^/]+/sessions/[^/]+/?$")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers and body, written apart, wait ~40 ms for a delayed ACK
    wbufsize = 1 << 16  # buffered: the reply leaves in one send when handle_one_request flushes

    def log_message(self, *args):
        pass

    def _reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._reply(200, b'{"status": "ok"}')

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?")[0]
        if path.endswith("/events"):
            self._reply(201, CREATED)
        elif SESSION.match(path):
            token = (json.loads(raw or b"{}") or {}).get("nextToken")
            self._reply(200, PAGES[int(token) if token else 0])
        else:
            self._reply(404, b'{"message": "canned server: unknown path"}')


parser = argparse.ArgumentParser()
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, required=True)
args = parser.parse_args()
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()
'''


def _clients(url: str) -> tuple:
    """Control- and data-plane clients on their own boto3 session, pointed explicitly at ``url``."""
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                            aws_session_token="testing", region_name=REGION)
    cfg = Config(retries={"max_attempts": 1, "mode": "standard"}, max_pool_connections=4,
                 connect_timeout=5, read_timeout=30)
    return (session.client("bedrock-agentcore-control", endpoint_url=url, config=cfg),
            session.client("bedrock-agentcore", endpoint_url=url, config=cfg))


def _memory_id(name: str, url: str) -> str:
    if name == "floor":
        return "bench-0123456789"
    control, _ = _clients(url)
    memory_id = control.create_memory(name="bench_memory", eventExpiryDuration=7)["memory"]["id"]
    for _ in range(50):
        if control.get_memory(memoryId=memory_id)["memory"]["status"] == "ACTIVE":
            return memory_id
        time.sleep(0.05)
    raise RuntimeError(f"{name}: memory {memory_id} never became ACTIVE")


def _create_events(data, memory_id: str, session: str, count: int, start: datetime, actor: str = "bench") -> None:
    for i in range(count):
        data.create_event(memoryId=memory_id, actorId=actor, sessionId=session,
                          eventTimestamp=start + timedelta(milliseconds=i),
                          payload=[{"conversational": {"content": {"text": f"message {i}"}, "role": "USER"}}])


def _timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _threaded_creates(url: str, memory_id: str, threads: int, per_thread: int) -> float:
    """Events/s from ``threads`` threads, each with its own client (made up front), started together."""
    datas = [_clients(url)[1] for _ in range(threads)]
    start = datetime.now(timezone.utc) - timedelta(hours=2)
    for number, data in enumerate(datas):  # warm-up: connection open, operation model loaded
        _create_events(data, memory_id, f"warm-{number}", 1, start)
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def work(number: int, data) -> None:
        barrier.wait()
        try:
            _create_events(data, memory_id, f"threads-{number}", per_thread, start, actor=f"bench-{number}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n, d)) for n, d in enumerate(datas)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} thread(s) failed: {errors[0]!r}")
    return threads * per_thread / elapsed


def _list_all(data, memory_id: str, session: str, paginate: bool) -> int:
    if not paginate:  # moto: one call, every event, no nextToken
        return len(data.list_events(memoryId=memory_id, actorId="bench", sessionId=session,
                                    includePayloads=True)["events"])
    count, token = 0, None
    while True:
        page = data.list_events(memoryId=memory_id, actorId="bench", sessionId=session, maxResults=PAGE,
                                includePayloads=True, **({"nextToken": token} if token else {}))
        count += len(page["events"])
        token = page.get("nextToken")
        if not token:
            return count


def measure(name: str, url: str, events: int, threads: int, per_thread: int, runs: int) -> dict[str, float]:
    memory_id = _memory_id(name, url)
    _, data = _clients(url)
    start = datetime.now(timezone.utc) - timedelta(hours=1)
    _create_events(data, memory_id, "warm-up", 20, start)
    session = "listing"
    sequential = _timed(lambda: _create_events(data, memory_id, session, events, start))
    concurrent = _threaded_creates(url, memory_id, threads, per_thread)
    paginate = name != "moto"
    counts = {_list_all(data, memory_id, session, paginate)}  # warm-up, and the count check
    if counts != {events}:
        raise RuntimeError(f"{name}: listing returned {counts.pop()} events, expected {events}")
    listing = statistics.median(_timed(lambda: _list_all(data, memory_id, session, paginate)) for _ in range(runs))
    return {"sequential": events / sequential, "concurrent": concurrent, "listing": listing}


def measure_retrieval(url: str, records: int, queries: int) -> tuple[float, float]:
    """(p50, p99) seconds of RetrieveMemoryRecords over ``records`` long-term records (module docstring)."""
    control, data = _clients(url)
    memory = control.create_memory(name="bench_records", eventExpiryDuration=7,
                                   memoryStrategies=[{"semanticMemoryStrategy": {"name": "facts"}}])["memory"]
    strategy_id = memory["strategies"][0]["strategyId"]
    rng = random.Random(15)
    vocabulary = [f"{a}{b}" for a in ("bill", "lea", "pool", "sock", "dash", "plan", "road", "test", "index", "cache")
                  for b in ("ing", "er", "s", "ed", "ment", "ly", "ion", "ic", "al", "ity")]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]  # Zipf-like: a few words are everywhere

    def sentence() -> str:
        return "The user " + " ".join(rng.choices(vocabulary, weights, k=12)) + "."
    now = time.time()
    for first in range(0, records, 100):
        batch = [{"requestIdentifier": f"r{first + i}", "content": {"text": sentence()}, "timestamp": now,
                  "namespaces": [f"/strategies/{strategy_id}/actors/a{(first + i) % 100}/"],
                  "memoryStrategyId": strategy_id} for i in range(min(100, records - first))]
        if data.batch_create_memory_records(memoryId=memory["id"], records=batch)["failedRecords"]:
            raise RuntimeError("BatchCreateMemoryRecords refused records")
    timings = []
    for i in range(queries):
        scope = ({"namespace": f"/strategies/{strategy_id}/actors/a{i % 100}/"} if i % 2 else
                 {"namespacePath": f"/strategies/{strategy_id}/"})
        criteria = {"searchQuery": " ".join(rng.choices(vocabulary, k=3)), "topK": 10}
        timings.append(_timed(lambda: data.retrieve_memory_records(memoryId=memory["id"], searchCriteria=criteria,
                                                                   **scope)))
    timings.sort()
    return statistics.median(timings), timings[min(len(timings) - 1, int(len(timings) * 0.99))]


def _line(label: str, figures: str) -> None:
    print(f"{label:<52}{figures}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2000, help="sequential CreateEvents = events listed (100-20000)")
    parser.add_argument("--threads", type=int, default=8, help="threads for the concurrent figure (1-64)")
    parser.add_argument("--per-thread", type=int, default=250, help="CreateEvents per thread (1-10000)")
    parser.add_argument("--runs", type=int, default=5, help="listing repetitions, median reported (1-100)")
    parser.add_argument("--records", type=int, default=10_000, help="long-term records searched (100-100000)")
    parser.add_argument("--queries", type=int, default=200, help="RetrieveMemoryRecords calls timed (10-10000)")
    args = parser.parse_args()
    for option, low, high in (("events", 100, 20_000), ("threads", 1, 64), ("per_thread", 1, 10_000),
                              ("runs", 1, 100), ("records", 100, 100_000), ("queries", 10, 10_000)):
        if not low <= getattr(args, option) <= high:
            parser.error(f"--{option.replace('_', '-')} must be between {low} and {high}")

    results: dict[str, dict[str, float]] = {}
    with TemporaryDirectory(prefix="bench-memory-") as scratch:
        tmp = Path(scratch)
        settings = config.load(env={}, logs_dir=tmp / "logs", artifacts_dir=tmp / "artifacts")
        (tmp / "moto_server.py").write_text(MOTO_SCRIPT)
        (tmp / "canned_server.py").write_text(textwrap.dedent(CANNED_SCRIPT))
        (tmp / "principals.json").write_text(json.dumps(IAM_PRINCIPALS))
        servers = {
            "emulator": ServerProcess(EMULATOR_SCRIPT, "serve", "--db", str(tmp / "memory.db"),
                                      settings=settings, name="agentcore-local"),
            "iam": ServerProcess(EMULATOR_SCRIPT, "serve", "--db", str(tmp / "memory-iam.db"), "--iam",
                                 str(tmp / "principals.json"), settings=settings, name="agentcore-local-iam"),
            "moto": ServerProcess(tmp / "moto_server.py", settings=settings, name="moto",
                                  ready_path="/moto-api/"),
            "floor": ServerProcess(tmp / "canned_server.py", settings=settings, name="canned",
                                   env={"CANNED_EVENTS": str(args.events)}),
        }
        print(f"bench/memory.py: {args.events} sequential CreateEvents, {args.threads} threads x {args.per_thread}, "
              f"listing of {args.events} events (page {PAGE}, median of {args.runs}); Python {sys.version.split()[0]}")
        for name, server in servers.items():
            with server:
                began = time.perf_counter()
                results[name] = measure(name, server.base_url, args.events, args.threads, args.per_thread,
                                        args.runs)
                if name == "emulator":
                    retrieval = measure_retrieval(server.base_url, args.records, args.queries)
                print(f"  {name:<9} {server.base_url}  measured in {time.perf_counter() - began:5.1f} s")

    print()
    labels = {"emulator": "emulator (SQLite, durable)", "iam": "emulator, local IAM on", "moto": "moto 5.2.5 server",
              "floor": "canned replies (floor)"}
    print(f"{'':<28}{'CreateEvent seq':>18}{f'CreateEvent {args.threads} thr':>20}{'list all':>14}")
    for name, label in labels.items():
        figures = results[name]
        note = "  (1 call, no paging)" if name == "moto" else f"  ({-(-args.events // PAGE)} pages)"
        print(f"{label:<28}{figures['sequential']:>12.0f} ev/s{figures['concurrent']:>15.0f} ev/s"
              f"{figures['listing'] * 1000:>11.1f} ms{note}")
    emulator, moto, floor = results["emulator"], results["moto"], results["floor"]
    print()
    _line("emulator / floor, CreateEvent sequential", f"{emulator['sequential'] / floor['sequential']:6.2f}x")
    _line(f"emulator / floor, CreateEvent {args.threads} threads", f"{emulator['concurrent'] / floor['concurrent']:6.2f}x")
    _line("emulator / floor, listing time", f"{emulator['listing'] / floor['listing']:6.2f}x")
    _line("emulator / moto, CreateEvent sequential", f"{emulator['sequential'] / moto['sequential']:6.2f}x")
    _line(f"emulator / moto, CreateEvent {args.threads} threads", f"{emulator['concurrent'] / moto['concurrent']:6.2f}x")
    _line("emulator / moto, listing time (moto: 1 call)", f"{emulator['listing'] / moto['listing']:6.2f}x")
    print()
    ratio = emulator["sequential"] / floor["sequential"]
    _line(f"target: sequential CreateEvent >= {TARGET_CREATE_RATIO}x floor",
          f"{ratio:6.2f}x   {'met' if ratio >= TARGET_CREATE_RATIO else 'MISSED'}")
    _line(f"target: full {args.events}-event listing < {TARGET_LISTING_SECONDS} s",
          f"{emulator['listing']:6.3f} s   {'met' if emulator['listing'] < TARGET_LISTING_SECONDS else 'MISSED'}")
    slowdown = emulator["sequential"] / results["iam"]["sequential"]
    _line(f"target: CreateEvent, IAM on, <= {TARGET_IAM_SLOWDOWN}x the time off",
          f"{slowdown:6.2f}x   {'met' if slowdown <= TARGET_IAM_SLOWDOWN else 'MISSED'}  ({args.threads} threads: "
          f"{emulator['concurrent'] / results['iam']['concurrent']:.2f}x)")
    print()
    _line(f"emulator RetrieveMemoryRecords over {args.records} records",
          f"p50 {retrieval[0] * 1000:6.1f} ms   p99 {retrieval[1] * 1000:6.1f} ms  ({args.queries} queries, topK 10)")


if __name__ == "__main__":
    main()
