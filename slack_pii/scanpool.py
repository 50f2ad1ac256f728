"""Where scans run: worker processes, each holding a built scanner, behind one typed call shared by the Web API
and the Bolt app: `await pool.scan(payload, channel_id=...) -> Outcome`.

Why processes: a thread cannot be stopped, so one runaway scan used to keep the only scan thread while every
request behind it timed out. Here a scan that overruns is really stopped (its worker is killed and replaced), the
pool uses every core, and it refuses at once (`ScanBusy`) when `queue_depth` requests already wait for a worker
instead of queueing them into timeouts.

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


def _worker_main(scanner: Scanner, conn: Connection, cpu_seconds: float) -> None:
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
    while True:
        try:
            payload, channel_id, channel_name = conn.recv()
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


@dataclass(eq=False)  # identity: a worker is itself, not its fields
class _Worker:
    process: BaseProcess
    conn: Connection
    scanner: Scanner  # the scanner it was forked with (a reload makes it stale)
    scans: int = field(default=0)

    @property
    def pid(self) -> int | None:
        return self.process.pid


class ScanPool:
    """`workers` processes; at most `queue_depth` requests wait for one; each scan has `cpu_seconds` of CPU and
    `timeout_seconds` of wall-clock time. `start()` before the first scan, `close()` at shutdown."""

    def __init__(self, slot: ScannerSlot, *, workers: int = 0, queue_depth: int = 32, cpu_seconds: float = 3.0,
                 timeout_seconds: float = 30.0, metrics: Metrics | None = None):
        self.slot = slot
        self.size = workers or default_workers()
        self.queue_depth = queue_depth
        self.cpu_seconds = cpu_seconds
        self.timeout_seconds = timeout_seconds
        self.metrics = metrics or Metrics()
        self._threads = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="scan-pool")
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._live: set[_Worker] = set()
        self._live_lock = threading.Lock()  # pool threads fork and reap concurrently
        self._waiting = 0
        self._closed = False

    # --- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        scanner = self.slot.current
        for _ in range(self.size):
            self._idle.put_nowait(await loop.run_in_executor(self._threads, self._fork, scanner))

    async def close(self) -> None:
        """Kill every worker (they hold no state) and wait for them to be reaped."""
        self._closed = True
        workers = list(self._live)
        await asyncio.get_running_loop().run_in_executor(self._threads, self._reap, workers)
        self._threads.shutdown(wait=False, cancel_futures=True)

    @property
    def idle_workers(self) -> int:
        return self._idle.qsize()

    def worker_pids(self) -> list[int]:
        """Live workers' process ids (for /readyz, tests and the bench)."""
        return sorted(w.pid for w in self._live if w.pid is not None)

    # --- scanning ----------------------------------------------------------------------------------------------

    async def scan(self, payload: Any, *, channel_id: str | None = None,
                   channel_name: str | None = None) -> Outcome:
        """The outcome with the scanner in force now. Raises ScanBusy (refused at once) or NoOutcome."""
        if self._closed:
            raise NoOutcome("shutting_down")
        if self._idle.empty() and self._waiting >= self.queue_depth:
            self.metrics.scan_refused.labels("busy").inc()
            raise ScanBusy("busy")
        self._waiting += 1
        try:
            worker = await self._idle.get()
        finally:
            self._waiting -= 1
        # NOTE: the call runs as its own task, so a caller that goes away (a client hanging up) never strands a
        # worker: the task finishes the scan and gives the worker back either way.
        task = asyncio.ensure_future(self._run(worker, (payload, channel_id, channel_name)))
        kind, value = await asyncio.shield(task)
        if kind == "ok":
            return value
        raise NoOutcome(value)

    async def _run(self, worker: _Worker, job: tuple) -> tuple[str, Any]:
        loop = asyncio.get_running_loop()
        scanner = self.slot.current
        try:
            if worker.scanner is not scanner:  # a reload (or allow-list change) since this worker was forked
                worker = await loop.run_in_executor(self._threads, self._replace, worker, scanner, "reload")
            worker, kind, value = await loop.run_in_executor(self._threads, self._call, worker, job)
        finally:
            if not self._closed:
                self._idle.put_nowait(worker)
        return kind, value

    # --- blocking parts (pool threads) -----------------------------------------------------------------------

    def _fork(self, scanner: Scanner) -> _Worker:
        parent_end, child_end = _FORK.Pipe(duplex=True)
        with self._live_lock:
            process = _FORK.Process(target=_worker_main, args=(scanner, child_end, self.cpu_seconds),
                                    name="slack-pii-scan", daemon=True)
            process.start()
            child_end.close()
            worker = _Worker(process, parent_end, scanner)
            self._live.add(worker)
        return worker

    def _replace(self, worker: _Worker, scanner: Scanner, reason: str) -> _Worker:
        self._reap([worker])
        if self._closed:
            return worker
        self.metrics.scan_workers_replaced.labels(reason).inc()
        log.info(messages.scan_worker_replaced(worker.pid, reason))
        return self._fork(scanner)

    def _reap(self, workers: list[_Worker]) -> None:
        for worker in workers:
            with self._live_lock:
                self._live.discard(worker)
                worker.conn.close()
            if worker.process.is_alive():
                worker.process.kill()
            worker.process.join(timeout=10)

    def _call(self, worker: _Worker, job: tuple) -> tuple[_Worker, str, Any]:
        """(the worker to give back, "ok", outcome) or (a fresh worker, "failed", reason)."""
        started = time.monotonic()
        try:
            worker.conn.send(job)
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
