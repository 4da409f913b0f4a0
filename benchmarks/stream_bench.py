"""Stream benchmark: N items through `mediamon stream` on the Pub/Sub emulator, with on-time windows.

    .venv/bin/python -m benchmarks.stream_bench [--items 6000] [--rate 600] [--window 10] [--mode exactly-once|graph]

Starts the emulator (tests/pubsub_emulator.py), makes a topic and subscription, starts
`mediamon stream` on a generated config (10 s fixed windows, SQLite sinks) as a subprocess and,
once it is reading, publishes N generated news items (six languages, ~2% re-sent duplicates,
event time = now) at a steady rate (publish requests of 20 ms of the rate).  Measured:

- sustained items/s: messages published / time from the first publish until the articles sink
  holds every distinct article (the stream's summary must agree after SIGTERM);
- latency from a window's end to its final result in the SQLite counts sink (the sink is polled
  every 0.1 s; early panes are set longer than a window, so the first row after the window end
  is the on-time pane; a row that changes later, a late pane, counts from its last change);
- peak memory of the stream process (VmHWM from /proc/PID/status).

Then SIGTERM: the job must exit 0 with items_read == articles + duplicates + dead_letters + late.
`--mode exactly-once` (default): the config has state.path, so the job runs committed
micro-batches (docs/streaming.md); its counts change with every batch, and a window's latency is
from its end to the last change of its rows. `--mode graph`: no state.path, the Beam streaming
graph on the local runner (its reader pulls 100 messages per bundle: a ceiling near 600-700/s).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tests.pubsub_emulator import start_emulator, stop_emulator

PROJECT = "mediamon-bench"
TOPIC = f"projects/{PROJECT}/topics/items"
SUBSCRIPTION = f"projects/{PROJECT}/subscriptions/items"

# (language, title template, summary template); {place} and {n} are filled in per item.
STORIES: list[tuple[str, str, str]] = [
    ("en", "Raqqa offensive: SDF fighters advance on {place}",
     "The Syrian Democratic Forces said {n} civilians left {place} as the battle for Raqqa went on."),
    ("en", "Election officials count ballots in {place} after record turnout",
     "Turnout reached {n} percent; results are expected overnight, officials in {place} said."),
    ("en", "Floods force {n} families from their homes near {place}",
     "Rescue teams worked through the night as the river rose again near {place}."),
    ("fr", "Raqqa : les FDS progressent vers {place}",
     "Les Forces démocratiques syriennes annoncent que {n} civils ont quitté {place} pendant la bataille."),
    ("fr", "Élections : le dépouillement se poursuit à {place}",
     "La participation atteint {n} pour cent, selon la préfecture de {place}."),
    ("ar", "قوات سوريا الديمقراطية تتقدم في الرقة قرب {place}",
     "قالت قوات سوريا الديمقراطية إن {n} مدنيا غادروا {place} مع استمرار المعارك في الرقة."),
    ("ar", "فيضانات تجبر {n} عائلة على مغادرة منازلها قرب {place}",
     "عملت فرق الإنقاذ طوال الليل مع ارتفاع منسوب النهر مرة أخرى."),
    ("tr", "Rakka'da SDG güçleri {place} yakınlarında ilerliyor",
     "Suriye Demokratik Güçleri, {place} çevresindeki çatışmalarda {n} sivilin bölgeden ayrıldığını açıkladı."),
    ("es", "Inundaciones obligan a {n} familias a abandonar sus casas cerca de {place}",
     "Los equipos de rescate trabajaron toda la noche mientras el río volvía a crecer."),
    ("de", "Wahl in {place}: Auszählung dauert nach Rekordbeteiligung an",
     "Die Wahlbeteiligung lag bei {n} Prozent, teilte die Stadtverwaltung von {place} mit."),
]
PLACES = ["Tabqa", "Ain Issa", "Deir ez-Zor", "Kobani", "Manbij", "Hasakah", "Qamishli", "Aleppo"]
SOURCES = ["wire-en", "journal-fr", "akhbar-ar", "haber-tr", "noticias-es", "zeitung-de", "aggregator"]

CONFIG = """name: stream-bench
sources:
  pubsub: {{subscription: {subscription}}}
poll: {{topic: {topic}}}
language: {{allowed: [en, fr, ar, tr, es, de]}}
topics:
  - {{id: raqqa-offensive, name: Raqqa offensive, query: '(Raqqa OR Rakka OR الرقة) AND (battle OR bataille OR المعارك OR çatışmalarda OR offensive)'}}
  - {{id: elections, name: Elections, query: 'election OR élections OR Wahl OR ballots OR dépouillement'}}
keywords:
  - {{id: raqqa, forms: [Raqqa, Rakka, الرقة]}}
  - {{id: sdf, forms: [SDF, Syrian Democratic Forces, FDS, Forces démocratiques syriennes, SDG, قوات سوريا الديمقراطية]}}
  - {{id: floods, forms: [floods, inundaciones, فيضانات]}}
windows: {{size: {window}s, allowed_lateness: {lateness}s, early: {early}s}}
dedup: {{ttl: 1h}}
{state}
sinks:
  - {{type: sqlite, path: out/stream.db, what: counts}}
  - {{type: sqlite, path: out/stream.db, what: topics}}
  - {{type: sqlite, path: out/stream.db, what: articles}}
  - {{type: sqlite, path: out/stream.db, what: dead_letters}}
"""


def make_items(n: int, duplicate_every: int, seed: int = 6) -> list[dict[str, Any] | None]:
    """n slots: a new item (dict without `published`), or None = re-send an earlier item."""
    rng = random.Random(seed)
    out: list[dict[str, Any] | None] = []
    for i in range(n):
        if duplicate_every and i % duplicate_every == duplicate_every - 1:
            out.append(None)
            continue
        lang, title, summary = STORIES[i % len(STORIES)]
        place, number = rng.choice(PLACES), rng.randint(12, 4800)
        source = SOURCES[i % len(SOURCES)]
        item = {"id": f"https://{source}.example/story/{i}", "url": f"https://{source}.example/story/{i}",
                "title": title.format(place=place, n=number), "summary": summary.format(place=place, n=number),
                "source": source}
        if i % 3 == 0:
            item["language"] = lang              # some feeds declare their language, most do not
        out.append(item)
    return out


def iso_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _stamped(slot: dict[str, Any] | None, rng: random.Random, sent: list[dict[str, Any]]) -> dict[str, Any]:
    """The next item to send: a new one stamped now, or (None) the same story again, a little later."""
    if slot is None:
        return dict(rng.choice(sent[-200:]))
    item = dict(slot)
    item["published"] = iso_now()
    sent.append(item)
    return item


def publish(items: list[dict[str, Any] | None], rate: float, library: bool = False) -> tuple[float, float, int]:
    """Publish at `rate` msgs/s (event time = now); return (first publish, last accepted, distinct).

    Messages go out in publish requests of up to 20 ms of the rate (at most 500), each sent when
    its first message is due, as raw protobuf: the load generator shares the job's two cores,
    and the client library's batching publisher (a future and a proto-plus wrapper per message)
    took 2.3-2.5 s of CPU for 20,000 messages and 4.7-5.1 s to send them; this takes 0.5.
    `library=True` publishes with that client instead (`--publisher library`, as before)."""
    from google.cloud import pubsub_v1
    rng = random.Random(7)
    sent: list[dict[str, Any]] = []
    started = time.monotonic()
    if library:
        client = pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(max_messages=100, max_latency=0.02))
        futures = []
        for i, slot in enumerate(items):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            item = _stamped(slot, rng, sent)
            futures.append(client.publish(TOPIC, json.dumps(item, ensure_ascii=False).encode("utf-8"),
                                          id=item["id"], source=item["source"], published=item["published"]))
        for future in futures:
            future.result(timeout=60)
        last = time.monotonic()
        client.stop()
        return started, last, len(sent)
    from google.pubsub_v1.services.publisher.client import PublisherClient as GapicPublisher
    from google.pubsub_v1.types import PublishRequest, PubsubMessage
    client = pubsub_v1.PublisherClient()
    message, request = PubsubMessage.pb(), PublishRequest.pb()
    per_request = int(min(500, max(1, rate * 0.02)))
    for first in range(0, len(items), per_request):
        delay = started + first / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        messages = []
        for slot in items[first:first + per_request]:
            item = _stamped(slot, rng, sent)
            messages.append(message(data=json.dumps(item, ensure_ascii=False).encode("utf-8"), attributes={
                "id": item["id"], "source": item["source"], "published": item["published"]}))
        response = GapicPublisher.publish(client, request=PublishRequest.wrap(request(topic=TOPIC, messages=messages)),
                                          timeout=60)
        if len(response.message_ids) != len(messages):
            raise RuntimeError(f"the emulator accepted {len(response.message_ids)} of {len(messages)} messages")
    last = time.monotonic()
    client.stop()
    return started, last, len(sent)


class SinkWatcher:
    """Polls the SQLite sink: when each window's count rows last changed; the articles written."""

    def __init__(self, db: Path, every: float = 0.1) -> None:
        self.db = db
        self.every = every
        self.rows: dict[tuple[str, str, str], tuple[int, int]] = {}
        self.changed: dict[str, float] = {}        # window_end -> wall time of its last change
        self.articles = 0
        self.articles_at = 0.0                     # monotonic time articles last grew
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="sink-watcher", daemon=True)

    def _poll(self) -> None:
        if not self.db.exists():
            return
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5) as conn:
            try:
                counts = conn.execute("SELECT window_end, keyword, language, articles, mentions FROM counts").fetchall()
                articles = int(conn.execute("SELECT COUNT(*) FROM articles").fetchone()[0])
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return                             # the sink has not made its tables yet
                raise
        seen = time.time()
        for end, keyword, language, n, mentions in counts:
            key = (end, keyword, language)
            if self.rows.get(key) != (n, mentions):
                self.rows[key] = (n, mentions)
                self.changed[end] = seen
        if articles != self.articles:
            self.articles, self.articles_at = articles, time.monotonic()

    def _run(self) -> None:
        try:
            while not self.stop.wait(self.every):
                self._poll()
        except BaseException as exc:  # re-raised by the benchmark after join
            self.error = exc

    def latencies(self) -> list[float]:
        ends = {end: datetime.fromisoformat(end.replace("Z", "+00:00")).timestamp() for end in self.changed}
        return [self.changed[end] - ends[end] for end in sorted(self.changed)]


def _status_mb(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def _tree(pid: int) -> list[int]:
    """The process and its descendants (the stream job runs its stages in a child process)."""
    out = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as fh:
                for child in fh.read().split():
                    out.extend(_tree(int(child)))
    except FileNotFoundError:
        pass
    return out


def _tree_mb(pid: int, field: str) -> float:
    """A /proc status field summed over the job's processes (driver + workers)."""
    total = 0.0
    for p in _tree(pid):
        try:
            total += _status_mb(p, field)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def vm_hwm_mb(pid: int) -> float:
    """Peak resident memory of the job: the sum of each process's peak (VmHWM), an upper bound."""
    return _tree_mb(pid, "VmHWM")


def rss_mb(pid: int) -> float:
    """Resident memory of the job now (driver + workers)."""
    return _tree_mb(pid, "VmRSS")


def cpu_seconds(pid: int, tree: bool = True) -> float:
    """User + system CPU of a process (tree) so far (/proc/PID/stat; exited children not counted)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for p in _tree(pid) if tree else [pid]:
        try:
            with open(f"/proc/{p}/stat", encoding="ascii") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += (int(fields[11]) + int(fields[12])) / tick      # utime, stime
    return total


def calibrate() -> float:
    """CPU milliseconds of a fixed pure-Python loop: how fast this machine is right now.  On the
    shared 2-core machine the same job took 8 to 15 CPU-seconds for the same 20,000 messages
    from one hour to the next; this figure, taken before and after the run, says which kind of
    hour a result came from."""
    times = []
    for _ in range(3):
        started = time.process_time()
        total = 0
        for i in range(1_000_000):
            total += i * i % 7
        times.append((time.process_time() - started) * 1000)
    return statistics.median(times)


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float, seen: list[str]) -> None:
    """Read the job's stderr until a line contains `needle` (lines kept in `seen`)."""
    deadline = time.monotonic() + timeout
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            raise RuntimeError("the stream job exited early:\n" + "".join(seen[-40:]))
        seen.append(line)
        if needle in line:
            return
    raise RuntimeError(f"no {needle!r} from the stream job within {timeout:g}s")


def bench(n: int, rate: float, window: float, work: Path, mode: str = "exactly-once",
          job_log: Path | None = None, memory_log: Path | None = None,
          emulator_pid: int | None = None, library_publisher: bool = False) -> dict[str, Any]:
    from pipeline.io.pubsub import ensure_subscription
    ensure_subscription(SUBSCRIPTION, TOPIC)
    config = work / "stream-bench.yaml"
    # lateness: SplitLate calls an item late within 30 s of its window's close; 10 min leaves room
    # for a backlog when the job is slower than the publisher (items are still "now" when sent)
    state = "state: {path: out/state.db}" if mode == "exactly-once" else ""
    config.write_text(CONFIG.format(subscription=SUBSCRIPTION, topic=TOPIC, window=int(window),
                                    lateness=600, early=int(window) * 6, state=state), encoding="utf-8")
    summary_path = work / "summary.json"
    verbose = ["-v"] if job_log is not None else []
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", *verbose, "stream", str(config), "--summary", str(summary_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=work)
    log: list[str] = []
    try:
        wait_for_line(proc, "reading ", 120, log)
        def keep_log() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                log.append(line)
                if job_log is not None:       # as it comes, so a long run can be watched
                    with job_log.open("a", encoding="utf-8") as fh:
                        fh.write(line)
        if job_log is not None:
            job_log.write_text("".join(log), encoding="utf-8")
        drain = threading.Thread(target=keep_log, daemon=True)
        drain.start()
        time.sleep(3.0)                          # let the first pulls and heartbeats go through
        # a long run polls less often: COUNT(*) over millions of rows is not free
        watcher = SinkWatcher(work / "out" / "stream.db", every=0.1 if n <= 100_000 else 1.0)
        watcher.thread.start()
        peak = vm_hwm_mb(proc.pid)
        sampling = threading.Event()
        if memory_log is not None:   # a timeline while publishing and after, once a minute
            def sample(started: float = time.monotonic()) -> None:
                while not sampling.wait(60.0) and proc.poll() is None:
                    with memory_log.open("a", encoding="utf-8") as fh:
                        fh.write(json.dumps({"seconds": round(time.monotonic() - started), "rss_mb": round(rss_mb(proc.pid)),
                                             "peak_mb": round(vm_hwm_mb(proc.pid)), "articles": watcher.articles,
                                             "load": round(os.getloadavg()[0], 1)}) + "\n")
            threading.Thread(target=sample, name="memory-log", daemon=True).start()
        items = make_items(n, duplicate_every=50)
        cpu0 = _cpu_now(proc.pid, emulator_pid)
        first, last_published, distinct = publish(items, rate, library_publisher)
        deadline = time.monotonic() + 120 + n / 20
        while watcher.articles < distinct and time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("the stream job exited early:\n" + "".join(log[-40:]))
            peak = max(peak, vm_hwm_mb(proc.pid))
            time.sleep(0.2)
        all_counted = watcher.articles_at
        cpu = {k: v - cpu0[k] for k, v in _cpu_now(proc.pid, emulator_pid).items()}
        time.sleep(window + 8.0)                 # the last window closes, its on-time pane is written
        peak = max(peak, vm_hwm_mb(proc.pid))
        proc.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        code = proc.wait(timeout=60)
        stop_seconds = time.monotonic() - stopped
        watcher.stop.set()
        sampling.set()
        watcher.thread.join(timeout=10)
        if watcher.error is not None:
            raise watcher.error
        watcher._poll()
        load = os.getloadavg()[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if code != 0:
        raise RuntimeError(f"stream exited {code}:\n" + "".join(log[-40:]))
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    latencies = watcher.latencies()
    return {"items": n, "rate": rate, "distinct": distinct, "publish_seconds": last_published - first,
            "counted": watcher.articles, "seconds": all_counted - first, "summary": summary,
            "latencies": latencies, "peak_mb": peak, "stop_seconds": stop_seconds, "load": load, "cpu": cpu}


def _cpu_now(job: int, emulator: int | None) -> dict[str, float]:
    """CPU seconds so far of the job (driver + worker), the emulator and this benchmark
    (its publisher and sink watcher): where the machine's two cores go during a burst."""
    t = os.times()
    driver = cpu_seconds(job, tree=False)
    return {"job": cpu_seconds(job), "driver": driver, "emulator": cpu_seconds(emulator) if emulator else 0.0,
            "bench": t.user + t.system}


def table(r: dict[str, Any]) -> str:
    s = r["summary"]
    balanced = s["items_read"] == s["articles"] + s["duplicates"] + s["dead_letters"] + s["late"]
    lat = r["latencies"]
    rows = [
        ("items published (target rate)", f"{r['items']} at {r['rate']:g}/s, sent in {r['publish_seconds']:.1f} s"),
        ("sustained throughput", f"{s['items_read'] / r['seconds']:.0f} items/s "
                                 f"({s['items_read']} items in {r['seconds']:.1f} s, first publish to all counted)"),
        ("window end -> final count in SQLite", f"median {statistics.median(lat):.2f} s, {sum(x <= 2.0 for x in lat)} of {len(lat)} <= 2 s, max {max(lat):.2f} s "
                                                f"({len(lat)} windows of {r['window']:g} s)" if lat else "no windows"),
        ("mode", r["mode"]),
        ("CPU while publishing and counting", f"job {r['cpu']['job']:.1f} s (driver {r['cpu']['driver']:.1f}), emulator {r['cpu']['emulator']:.1f} s, "
                                              f"this bench (publisher, sink watcher) {r['cpu']['bench']:.1f} s "
                                              f"of {os.cpu_count() or 1} x {r['seconds']:.1f} s"),
        ("peak memory of the stream job (VmHWM, driver + worker)", f"{r['peak_mb']:.0f} MB"),
        ("machine", f"{os.cpu_count()} CPUs, load average {r['load']:.1f} at the end; a fixed Python loop "
                    f"took {r['speed'][0]:.0f} ms before, {r['speed'][1]:.0f} ms after (less is faster)"),
        ("SIGTERM to exit", f"{r['stop_seconds']:.1f} s"),
        ("summary", f"{s['items_read']} read = {s['articles']} articles + {s['duplicates']} duplicates + "
                    f"{s['dead_letters']} dead letters + {s['late']} late: "
                    + ("balanced" if balanced else "NOT BALANCED")),
    ]
    return "| measure | value |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=6000)
    parser.add_argument("--rate", type=float, default=600.0, help="messages per second to publish")
    parser.add_argument("--window", type=float, default=10.0, help="fixed window size, seconds")
    parser.add_argument("--mode", choices=("exactly-once", "graph"), default="exactly-once",
                        help="exactly-once: state.path micro-batches (default); graph: the Beam "
                             "streaming graph on the local runner, no state.path")
    parser.add_argument("--publisher", choices=("raw", "library"), default="raw",
                        help="raw: publish requests of raw protobuf (default); library: the client "
                             "library's batching publisher, which takes 4-5x the CPU (earlier figures)")
    parser.add_argument("--job-log", type=Path, help="write the job's log (run with -v) to this file")
    parser.add_argument("--memory-log", type=Path, help="append the job's memory every minute (JSON lines)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="stream-bench-") as tmp:
        work = Path(tmp)
        speed_before = calibrate()
        emulator, host = start_emulator(work / "emulator.log")
        os.environ["PUBSUB_EMULATOR_HOST"] = host     # before any client is made (also for the job)
        try:
            result = bench(args.items, args.rate, args.window, work, args.mode, args.job_log, args.memory_log,
                           emulator.pid, args.publisher == "library")
        finally:
            stop_emulator(emulator)
    result["speed"] = (speed_before, calibrate())
    result["window"] = args.window
    result["mode"] = args.mode
    print(table(result), end="")
    s = result["summary"]
    ok = (s["items_read"] == result["items"]
          and s["items_read"] == s["articles"] + s["duplicates"] + s["dead_letters"] + s["late"])
    if not ok:
        print(f"expected {result['items']} items read, all accounted for: {s}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
