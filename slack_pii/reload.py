"""Hot reload: recognizer rules and policy are re-read on SIGHUP and when their files change, validated first.

A reload is all-or-nothing. The candidate config goes through the same checks as `slack-pii check-config`
(`collect_rules` with the rules' own examples, then `collect_policy` against the entities those rules produce);
any problem is logged with its file, rule id and fix, and the running scanner stays in force. A good config is
built off the event loop (compiling rules is CPU work) and then swapped into the `ScannerSlot` in one
assignment: a request reads `slot.current` once and scans with that, so no request ever sees half a config.

The slot also carries the allow-list fed by `slack-pii feedback allow` (the store's `allow_fingerprints`
table). NOTE: it is polled from the store every few seconds instead of being written into policy.yaml, so an
exception takes effect without a redeploy, without rewriting a file people edit by hand, and without the value.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from slack_pii import messages
from slack_pii.errors import ConfigProblem
from slack_pii.detect.policy import DEFAULT_POLICY_FILE, collect_policy
from slack_pii.detect.redact import Redactor
from slack_pii.detect.scanner import Scanner, known_entities_for_rules
from slack_pii.detect.rules import CATEGORIES, DEFAULT_RULES_DIR, PLACEHOLDERS_FILE, collect_rules

log = logging.getLogger(__name__)

ALLOW_LIST_REFRESH_SECONDS = 2.0  # how soon a `feedback allow` reaches a running proxy
WATCH_DEBOUNCE_MS = 300  # editors write a file in several steps; one reload per burst of changes


# --- log lines (shape only: paths, rule ids, versions, counts) -------------------------------------------------


# --- the slot ----------------------------------------------------------------------------------------------------


class ScannerSlot:
    """The scanner in force. Handlers read `current` once per request; reloads replace it whole."""

    def __init__(self, scanner: Scanner):
        self._current = scanner
        self.loaded_at = time.time()
        self.reloads = 0  # successful swaps since start
        self.rejected = 0  # reloads refused because the new config had problems
        self.last_problems: tuple[str, ...] = ()

    @property
    def current(self) -> Scanner:
        return self._current

    @current.setter
    def current(self, scanner: Scanner) -> None:
        self._current = scanner

    @property
    def config_version(self) -> str:
        return self.current.config_version

    def swap(self, scanner: Scanner) -> None:
        scanner = dataclasses.replace(scanner, extra_allow_fingerprints=self.current.extra_allow_fingerprints)
        self.current = scanner
        self.loaded_at = time.time()
        self.reloads += 1
        self.last_problems = ()

    def set_allow_fingerprints(self, fingerprints: frozenset[str]) -> bool:
        """Put the feedback allow-list in force; True when it changed."""
        if fingerprints == self.current.extra_allow_fingerprints:
            return False
        self.current = dataclasses.replace(self.current, extra_allow_fingerprints=frozenset(fingerprints))
        return True

    def status(self) -> dict:
        """For /readyz and the dashboard: what runs, since when, and whether the last edit was refused."""
        scanner = self.current
        return {"config_version": scanner.config_version, "rules_version": scanner.engine.version,
                "policy_version": scanner.policy.version, "loaded_at": self.loaded_at, "reloads": self.reloads,
                "rejected": self.rejected, "last_problems": list(self.last_problems),
                "allow_fingerprints": len(scanner.extra_allow_fingerprints)}


@dataclass(frozen=True)
class ReloadResult:
    ok: bool  # False: the running config stayed because of `problems`
    changed: bool
    version: str  # the version in force after the attempt
    problems: tuple[str, ...] = ()


@dataclass
class _Candidate:
    scanner: Scanner | None = None
    problems: list[ConfigProblem] = field(default_factory=list)
    rules_digest: str = ""


# --- the watcher -------------------------------------------------------------------------------------------------


class ConfigWatcher:
    """Reloads on SIGHUP and on file changes, and keeps the feedback allow-list fresh; `reload()` is the one entry."""

    def __init__(self, settings, slot: ScannerSlot, *,
                 allow_fingerprints: Callable[[], Awaitable[frozenset[str]]] | None = None,
                 allow_refresh_seconds: float = ALLOW_LIST_REFRESH_SECONDS, debounce_ms: int = WATCH_DEBOUNCE_MS):
        self.settings = settings
        self.slot = slot
        self.allow_fingerprints = allow_fingerprints
        self.allow_refresh_seconds = allow_refresh_seconds
        self.debounce_ms = debounce_ms
        self.rules_dir = Path(settings.recognizers_dir or DEFAULT_RULES_DIR).resolve()
        self.policy_file = Path(settings.policy_file or DEFAULT_POLICY_FILE).resolve()
        placeholders = self.rules_dir.parent / "placeholders.yaml"
        self.placeholders_file = (placeholders if placeholders.exists() else PLACEHOLDERS_FILE).resolve()
        # NOTE: taken from disk now, assuming the running engine was built from these files moments ago.
        self._rules_digest = self.rules_digest()
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._signal_installed = False

    # --- reloading ---------------------------------------------------------------------------------------------

    async def reload(self, reason: str = "manual") -> ReloadResult:
        """Validate and build the config on disk in a thread; swap it in only if it has no problems."""
        async with self._lock:
            running = self.slot.current
            started = time.perf_counter()
            loop = asyncio.get_running_loop()
            try:
                candidate = await loop.run_in_executor(None, self._prepare, running)
            except Exception as exc:  # noqa: BLE001 - e.g. the model vanished: keep serving with what runs
                log.error(messages.reload_failed(reason, type(exc).__name__, running.config_version))
                self.slot.rejected += 1
                return ReloadResult(False, False, running.config_version, (type(exc).__name__,))
            if candidate.problems:
                problems = tuple(str(p) for p in candidate.problems)
                log.error(messages.reload_rejected(reason, len(problems), running.config_version))
                for problem in candidate.problems:
                    log.error(messages.reload_problem(problem))
                self.slot.rejected += 1
                self.slot.last_problems = problems
                return ReloadResult(False, False, running.config_version, problems)
            new = candidate.scanner
            self._rules_digest = candidate.rules_digest
            if new.config_version == running.config_version:
                log.info(messages.reload_unchanged(reason, running.config_version))
                self.slot.last_problems = ()
                return ReloadResult(True, False, running.config_version)
            self.slot.swap(new)
            log.info(messages.reload_applied(reason, running.config_version, new.config_version,
                                    (time.perf_counter() - started) * 1000))
        try:
            await self.refresh_allow_list()
        except Exception as exc:  # noqa: BLE001 - the new config is in force; the poller retries the allow-list
            log.warning(messages.allow_list_refresh_failed(type(exc).__name__, "after reload"))
        return ReloadResult(True, True, self.slot.config_version)

    def _prepare(self, running: Scanner) -> _Candidate:
        """Runs in a worker thread: the same checks as check-config, then a scanner (engine reused if rules equal).

        NOTE: compiling the rules (hyperscan databases, examples) is the slow part, so it only happens when a
        rule or placeholder file's bytes differ from what the running engine was built from; a policy edit
        is validated against the running rules' entities and swaps in within milliseconds.
        """
        digest = self.rules_digest()
        engine, problems, ruleset = running.engine, [], running.engine.ruleset
        if digest != self._rules_digest:
            ruleset, problems = collect_rules(self.rules_dir)
            if not problems and ruleset.version != engine.version:
                engine = self._build_engine(ruleset)
        policy, policy_problems = collect_policy(self.policy_file, known_entities_for_rules(ruleset, self.policy_file),
                                                 CATEGORIES)
        problems += policy_problems
        if problems or policy is None:
            return _Candidate(problems=problems)
        if self.settings.on_scan_error:  # the setting overrides the file, as at start-up
            policy = dataclasses.replace(policy, on_scan_error=self.settings.on_scan_error)
        return _Candidate(Scanner(engine, policy, Redactor(policy, running.redactor.hash_key),
                                  fingerprint_key=running.fingerprint_key), rules_digest=digest)

    def rules_digest(self) -> str:
        """Bytes of every rule file and the placeholders file: cheap to compute, changes with any edit."""
        digest = hashlib.sha256()
        files = sorted(self.rules_dir.glob("*.yaml")) + [self.placeholders_file]
        for path in files:
            try:
                digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
            except OSError:  # vanished between glob and read (an editor's rename): differs, so it is re-checked
                digest.update(path.name.encode() + b"\0missing\0")
        return digest.hexdigest()

    def _build_engine(self, ruleset):
        from slack_pii.detect.engine import Engine, country_recognizer_names

        # NOTE: rebuilding loads the spaCy pipeline again (about a second, off the loop); rule edits are rare.
        return Engine.build(self.rules_dir, spacy_model=self.settings.spacy_model or None, ner=self.settings.ner,
                            ruleset=ruleset, country=country_recognizer_names(self.policy_file))

    async def refresh_allow_list(self) -> None:
        if self.allow_fingerprints is None:
            return
        fingerprints = await self.allow_fingerprints()
        if self.slot.set_allow_fingerprints(frozenset(fingerprints)):
            log.info(messages.allow_list_updated(len(fingerprints)))

    # --- triggers ----------------------------------------------------------------------------------------------

    def is_config_file(self, path: str | Path) -> bool:
        path = Path(path).resolve()
        if path in (self.policy_file, self.placeholders_file):
            return True
        return path.parent == self.rules_dir and path.suffix == ".yaml"

    async def start(self, *, watch: bool = True, handle_sighup: bool = True) -> None:
        """Install the SIGHUP handler and start the file watcher and the allow-list refresh (call on startup)."""
        loop = asyncio.get_running_loop()
        if handle_sighup:
            try:
                loop.add_signal_handler(signal.SIGHUP, self.on_sighup)
                self._signal_installed = True
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
                log.warning(messages.sighup_unavailable())
        if watch:
            self._tasks.append(asyncio.create_task(self._watch(), name="config-watcher"))
        if self.allow_fingerprints is not None:
            await self.refresh_allow_list()
            self._tasks.append(asyncio.create_task(self._poll_allow_list(), name="allow-list-refresh"))

    def on_sighup(self) -> None:
        """The signal handler: schedule the same `reload` a file change triggers."""
        task = asyncio.get_running_loop().create_task(self.reload("SIGHUP"))
        self._tasks.append(task)
        task.add_done_callback(lambda done: done in self._tasks and self._tasks.remove(done))

    async def stop(self) -> None:
        self._stop.set()
        if self._signal_installed:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._signal_installed = False
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def _watch(self) -> None:
        from watchfiles import awatch

        # Directories, not files: editors save by writing a new file and renaming it over the old one.
        roots = sorted({str(self.rules_dir), str(self.policy_file.parent), str(self.placeholders_file.parent)})
        async for changes in awatch(*roots, stop_event=self._stop, debounce=self.debounce_ms, recursive=False,
                                    watch_filter=lambda _change, path: self.is_config_file(path)):
            names = sorted({Path(p).name for _, p in changes})
            await self.reload("changed: " + ", ".join(names))

    async def _poll_allow_list(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=self.allow_refresh_seconds)
            except TimeoutError:
                pass
            if self._stop.is_set():
                return
            try:
                await self.refresh_allow_list()
            except Exception as exc:  # noqa: BLE001 - a locked or closing database must not end the refresher
                log.warning(messages.allow_list_refresh_failed(type(exc).__name__, "keeping the previous list"))
