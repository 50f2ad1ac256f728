"""Where scans run: worker processes, each holding a built scanner, behind one typed call shared by the Web API
and the Bolt app: `await pool.scan(payload, channel_id=...) -> Outcome`.

Why processes: a thread cannot be stopped, so one runaway scan used to keep the only scan thread while every
request behind it timed out. Here a scan that overruns is really stopped (its worker is killed and replaced), the
pool uses every core, and it refuses at once (`ScanBusy`) when `queue_depth` requests already wait for a worker
instead of queueing them into timeouts.

Two lanes, so a flood of huge messages cannot take every worker: a job whose pickled payload exceeds
`LARGE_JOB_BYTES` goes to its own worker, which runs at a lower CPU priority (nice +10) and has its own, short queue;
everything else goes to the `workers` normal ones. Large messages are the ones that degrade under attack (they wait,
then get `pii_scan_busy`); ordinary chat keeps its workers and its cores.

Two limits, so a busy machine alone never fails a benign message:
- CPU time, measured by the kernel inside the worker (`ITIMER_PROF`, default action: the worker dies): only the
  scan's own work counts, not the time it waited for a core while other processes ran.
- a wall-clock backstop (`timeout_seconds`), generous, for a worker that hangs without using CPU.

NOTE: workers are forked from the running proxy, so they share the scanner built at start-up (copy-on-write)
instead of building their own; after a hot reload each worker is replaced by a fork holding the new scanner the
next time it is picked. A per-call watchdog thread would not do: a regex stuck in C holds the GIL, so the
thread would never run; the kernel's CPU timer needs no Python code to fire.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import pickle
import signal
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from slack_pii import messages
from slack_pii.detect.scanner import Outcome, Scanner
from slack_pii.errors import DetectionError
from slack_pii.metrics import Metrics
from slack_pii.reload import ScannerSlot

log = logging.getLogger("slack_pii.scanpool")

_FORK = multiprocessing.get_context("fork")
# NOTE: ordinary chat messages pickle to well under 4 KiB; Slack's largest text (40k characters) to ~40 KiB.
LARGE_JOB_BYTES = 16 * 1024
LARGE_NICE = 10


class ScanBusy(DetectionError):
    """Every worker is busy and `queue_depth` requests already wait: refused at once, nothing was scanned."""


class NoOutcome(DetectionError):
    """The scan did not produce an outcome. `reason`: timeout, cpu_budget, worker_died, or the detector's
    exception type (never its message, which may quote the text)."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def default_workers() -> int:
    """One worker per core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# --- the worker side (runs in the forked child) ----------------------------------------------------------------


def _close_inherited_sockets(keep: int) -> None:
    """Close every socket the fork copied from the proxy (listeners, client connections, the event loop's
    wake-up pair, other workers' pipes) but `keep`: a copy held here would keep them from ever closing."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:  # no /proc: nothing to enumerate
        return
    for name in names:
        fd = int(name)
        try:
            if fd > 2 and fd != keep and stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.close(fd)
        except OSError:  # the directory's own fd, gone already
            pass


def _worker_main(scanner: Scanner, conn: Connection, cpu_seconds: float, nice: int) -> None:
    """A worker's life: scan what arrives, answer, until the pipe closes. Over `cpu_seconds` of CPU in one scan
    the kernel's SIGPROF ends the process (default action), wherever the scan is stuck."""
    for signum in (signal.SIGINT, signal.SIGHUP):  # the proxy owns shutdown and reloads; a worker ends on EOF
        signal.signal(signum, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGPROF, signal.SIG_DFL)
    try:
        signal.set_wakeup_fd(-1)  # the proxy's event loop listens on that fd; a worker must not write to it
    except ValueError:
        pass
    _close_inherited_sockets(conn.fileno())
    if nice:
        os.nice(nice)  # lowering is always allowed; it lasts for this worker's life
    while True:
        try:
            payload, channel_id, channel_name = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        signal.setitimer(signal.ITIMER_PROF, cpu_seconds)
        try:
            reply: tuple[str, Any] = ("ok", scanner.scan(payload, channel_id=channel_id, channel_name=channel_name))
        except Exception as exc:  # noqa: BLE001 - any detection failure fails closed; only the type travels
            reply = ("error", type(exc).__name__)
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
        conn.send(reply)


# --- the proxy side ------------------------------------------------------------------------------------------


@dataclass(eq=False)  # identity: a lane is itself
class _Lane:
    """Workers for one kind of job: `size` of them, at most `queue_depth` requests waiting, run at `nice`."""

    name: str
    size: int
    queue_depth: int
    nice: int = 0
    idle: asyncio.Queue = field(default_factory=asyncio.Queue)
    waiting: int = 0


@dataclass(eq=False)  # identity: a worker is itself, not its fields
class _Worker:
    process: BaseProcess
    conn: Connection
    scanner: Scanner  # the scanner it was forked with (a reload makes it stale)
    lane: _Lane
    scans: int = field(default=0)

    @property
    def pid(self) -> int | None:
        return self.process.pid


class ScanPool:
    """`workers` processes for ordinary messages plus one for large ones; at most `queue_depth` requests wait for an
    ordinary worker (an eighth of that for the large one); each scan has `cpu_seconds` of CPU and `timeout_seconds`
    of wall-clock time. `start()` before the first scan, `close()` at shutdown."""

    def __init__(self, slot: ScannerSlot, *, workers: int = 0, queue_depth: int = 32, cpu_seconds: float = 3.0,
                 timeout_seconds: float = 30.0, metrics: Metrics | None = None):
        self.slot = slot
        self.size = workers or default_workers()
        self.queue_depth = queue_depth
        self.cpu_seconds = cpu_seconds
        self.timeout_seconds = timeout_seconds
        self.metrics = metrics or Metrics()
        self.normal = _Lane("normal", self.size, queue_depth)
        self.large = _Lane("large", 1, queue_depth // 8, LARGE_NICE)
        self._threads = ThreadPoolExecutor(max_workers=self.size + 1, thread_name_prefix="scan-pool")
        self._live: set[_Worker] = set()
        self._live_lock = threading.Lock()  # pool threads fork and reap concurrently
        self._closed = False

    # --- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        scanner = self.slot.current
        for lane in (self.normal, self.large):
            for _ in range(lane.size):
                lane.idle.put_nowait(await loop.run_in_executor(self._threads, self._fork, scanner, lane))

    async def close(self) -> None:
        """Kill every worker (they hold no state) and wait for them to be reaped."""
        self._closed = True
        workers = list(self._live)
        await asyncio.get_running_loop().run_in_executor(self._threads, self._reap, workers)
        self._threads.shutdown(wait=False, cancel_futures=True)

    @property
    def busy_workers(self) -> int:
        return sum(lane.size - lane.idle.qsize() for lane in (self.normal, self.large))

    def worker_pids(self) -> list[int]:
        """Live workers' process ids (for /readyz, tests and the bench)."""
        return sorted(w.pid for w in self._live if w.pid is not None)

    # --- scanning ----------------------------------------------------------------------------------------------

    async def scan(self, payload: Any, *, channel_id: str | None = None,
                   channel_name: str | None = None) -> Outcome:
        """The outcome with the scanner in force now. Raises ScanBusy (refused at once) or NoOutcome."""
        if self._closed:
            raise NoOutcome("shutting_down")
        job = pickle.dumps((payload, channel_id, channel_name), protocol=pickle.HIGHEST_PROTOCOL)
        lane = self.large if len(job) > LARGE_JOB_BYTES else self.normal
        if lane.idle.empty() and lane.waiting >= lane.queue_depth:
            self.metrics.scan_refused.labels("busy").inc()
            raise ScanBusy(f"busy ({lane.name} lane)")
        lane.waiting += 1
        try:
            worker = await lane.idle.get()
        finally:
            lane.waiting -= 1
        # NOTE: the call runs as its own task, so a caller that goes away (a client hanging up) never strands a
        # worker: the task finishes the scan and gives the worker back either way.
        task = asyncio.ensure_future(self._run(worker, job))
        kind, value = await asyncio.shield(task)
        if kind == "ok":
            return value
        raise NoOutcome(value)

    async def _run(self, worker: _Worker, job: bytes) -> tuple[str, Any]:
        loop = asyncio.get_running_loop()
        scanner = self.slot.current
        try:
            if worker.scanner is not scanner:  # a reload (or allow-list change) since this worker was forked
                worker = await loop.run_in_executor(self._threads, self._replace, worker, scanner, "reload")
            worker, kind, value = await loop.run_in_executor(self._threads, self._call, worker, job)
        finally:
            if not self._closed:
                worker.lane.idle.put_nowait(worker)
        return kind, value

    # --- blocking parts (pool threads) -----------------------------------------------------------------------

    def _fork(self, scanner: Scanner, lane: _Lane) -> _Worker:
        parent_end, child_end = _FORK.Pipe(duplex=True)
        with self._live_lock:
            process = _FORK.Process(target=_worker_main, args=(scanner, child_end, self.cpu_seconds, lane.nice),
                                    name="slack-pii-scan", daemon=True)
            process.start()
            child_end.close()
            worker = _Worker(process, parent_end, scanner, lane)
            self._live.add(worker)
        return worker

    def _replace(self, worker: _Worker, scanner: Scanner, reason: str) -> _Worker:
        self._reap([worker])
        if self._closed:
            return worker
        self.metrics.scan_workers_replaced.labels(reason).inc()
        log.info(messages.scan_worker_replaced(worker.pid, reason))
        return self._fork(scanner, worker.lane)

    def _reap(self, workers: list[_Worker]) -> None:
        for worker in workers:
            with self._live_lock:
                self._live.discard(worker)
                worker.conn.close()
            if worker.process.is_alive():
                worker.process.kill()
            worker.process.join(timeout=10)

    def _call(self, worker: _Worker, job: bytes) -> tuple[_Worker, str, Any]:
        """(the worker to give back, "ok", outcome) or (a fresh worker, "failed", reason)."""
        started = time.monotonic()
        try:
            worker.conn.send_bytes(job)
            if worker.conn.poll(self.timeout_seconds):
                kind, value = worker.conn.recv()
                worker.scans += 1
                return worker, ("ok" if kind == "ok" else "failed"), value
            reason = "timeout"
        except (EOFError, OSError):  # the worker died mid-scan; SIGPROF means it used up its CPU budget
            worker.process.join(timeout=10)
            reason = "cpu_budget" if worker.process.exitcode == -signal.SIGPROF else "worker_died"
        log.warning(messages.scan_overrun(reason, worker.pid, time.monotonic() - started))
        return self._replace(worker, self.slot.current, reason), "failed", reason
