"""Historical scans: what already reached Slack, scanned with the same Scanner the proxy uses.

A scan is a list of *units* (one day file of an export, or one conversation read through the Web API). Each unit
is scanned on its own (`scan_messages`) and committed to the report folder in one step (`ReportDir.commit`):
its findings.jsonl lines and plan lines are appended and fsynced, then a checkpoint line records the unit, the
byte offsets reached and the unit's counts. A run that is killed resumes from the checkpoint: files are cut back
to the last committed offsets, committed units are skipped, so no message is written twice and none is missing.

Nothing here writes a value: findings.jsonl carries the batch contract's findings (offsets, entity types, rule
ids) and verdict, never `redacted` (a warn finding stays in that text); the riskiest messages kept for the report
have *every* finding replaced, whatever its action.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from slack_pii import messages
from slack_pii.errors import DetectionError, SlackPiiError
from slack_pii.tools.batch import CHUNK_LINES, result_record

CHECKPOINT, FINDINGS, STATE = "checkpoint.jsonl", "findings.jsonl", "state.json"
TOP_MESSAGES = 25  # riskiest messages kept (redacted) for report.html
EXCERPT_CHARS = 400
VERDICT_RANK = {"allow": 0, "warn": 1, "redact": 2, "block": 3}
PLAN_ACTION = {"block": "delete", "redact": "redact"}  # what remediation does per verdict; warn is reported only
METADATA_FILES = {"channels.json": "public", "groups.json": "private", "dms.json": "dm", "mpims.json": "mpim"}
SYSTEM_SUBTYPES = frozenset({"channel_join", "channel_leave", "group_join", "group_leave", "channel_archive",
                             "channel_unarchive", "group_archive", "group_unarchive", "bot_add", "bot_remove",
                             "channel_name", "group_name"})


class HistoryError(SlackPiiError):
    """A problem with the export, the report folder or the plan; the message names the file and the fix."""


@dataclass(frozen=True)
class Conversation:
    id: str
    name: str
    kind: str  # public | private | dm | mpim
    folder: str = ""

    def label(self, names: bool) -> str:
        """Channels by #name; DMs and group DMs (whose names are people's handles) by id unless names are opted in."""
        if self.kind in ("public", "private"):
            return f"#{self.name}"
        return self.name if names and self.name else self.id

    def matches(self, wanted: Iterable[str]) -> bool:
        return any(w.lstrip("#") in (self.id, self.name) for w in wanted)


@dataclass(frozen=True)
class Unit:
    """The checkpoint grain: one export day file, or one conversation through the Web API."""

    key: str
    conversation: Conversation
    size: int = 0  # bytes, for the progress bar's ETA
    day: str = ""


@dataclass(frozen=True)
class Filters:
    since: date | None = None
    until: date | None = None
    channels: tuple[str, ...] = ()
    exclude_channels: tuple[str, ...] = ()

    def skip_reason(self, conversation: Conversation, day: str = "") -> str | None:
        if self.channels and not conversation.matches(self.channels):
            return "not in --channels"
        if self.exclude_channels and conversation.matches(self.exclude_channels):
            return "in --exclude-channels"
        if day:
            try:
                when = date.fromisoformat(day)
            except ValueError:
                return "file name is not a date"
            if self.since and when < self.since:
                return "before --since"
            if self.until and when > self.until:
                return "after --until"
        return None

    def describe(self) -> dict:
        return {"since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None,
                "channels": list(self.channels), "exclude_channels": list(self.exclude_channels)}


@dataclass(frozen=True)
class Options:
    """What every unit's scan needs besides the scanner."""

    workspace_url: str = ""  # https://acme.slack.com/ (permalinks); empty when unknown
    team_id: str = ""  # the workspace's team; messages from other teams (Slack Connect) cannot be changed
    plan: bool = False


# --- messages ----------------------------------------------------------------------------------------------


def content_payload(message: dict) -> dict:
    """What Slack shows of a message, as a payload the scanner walks: text, blocks, attachments and file titles,
    names and previews. Profiles, reactions and ids are left out: they are not what the poster wrote."""
    payload: dict[str, Any] = {}
    if isinstance(message.get("text"), str) and message["text"]:
        payload["text"] = message["text"]
    for name in ("blocks", "attachments"):
        if isinstance(message.get(name), list) and message[name]:
            payload[name] = message[name]
    files = []
    for item in message.get("files") or ():
        if isinstance(item, dict):
            shown = {"title": item.get("title"), "filename": item.get("name"),
                     "text": item.get("preview") or item.get("plain_text")}
            shown = {k: v for k, v in shown.items() if isinstance(v, str) and v}
            if shown:
                files.append(shown)
    if files:
        payload["files"] = files
    return payload


def poster(message: dict) -> str:
    return message.get("user") or message.get("bot_id") or message.get("username") or "unknown"


def permalink(workspace_url: str, channel: str, ts: str, thread_ts: str | None) -> str | None:
    if not workspace_url:
        return None
    link = f"{workspace_url.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}"
    if thread_ts and thread_ts != ts:
        link += f"?thread_ts={thread_ts}&cid={channel}"
    return link


def day_of(ts: str) -> str:
    try:
        return datetime.fromtimestamp(float(ts), timezone.utc).date().isoformat()
    except (TypeError, ValueError, OverflowError):
        return "unknown"


def risk(outcome) -> tuple:
    """Sort key for "riskiest": verdict first, then how many findings acted on, then the best score."""
    acted = [a for a in outcome.decision.actions if a.action != "allow"]
    return (VERDICT_RANK[outcome.verdict], len(acted), max((a.finding.score for a in acted), default=0.0))


def redact_everything(scanner, outcome) -> dict:
    """New text per segment with every finding replaced, whatever its action: the only form a report may show.

    NOTE: never start from `outcome.redacted`: a warn (or below-threshold) finding is left in that text."""
    from slack_pii.detect.policy import Decision, FindingAction

    everything = Decision("block", tuple(FindingAction(a.finding, "redact", a.reason)
                                         for a in outcome.decision.actions), ())
    return scanner.redactor.redact(outcome.segments, everything)


@dataclass
class UnitResult:
    """One unit's share of the report: lines to append and counts to add, committed together or not at all."""

    key: str
    findings: list[str] = field(default_factory=list)  # findings.jsonl lines
    plan: list[str] = field(default_factory=list)  # remediation plan lines
    stats: dict = field(default_factory=dict)
    top: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    worker: tuple[int, float, float] | None = None  # (pid, peak RSS MB, CPU s so far) of the process that scanned it


def new_stats() -> dict:
    return {"messages": 0, "scanned": 0, "with_findings": 0, "findings": 0, "edited": 0, "replies": 0, "bots": 0,
            "files": 0, "skipped": {}, "verdicts": {}, "channels": {}, "entities": {}, "rules": {}, "posters": {},
            "days": {}}


def _bump(table: dict, key: str, *values: int) -> None:
    row = table.setdefault(key, [0] * len(values))
    for i, value in enumerate(values):
        row[i] += value


def merge_stats(total: dict, part: dict) -> dict:
    """Add one unit's counts into the running totals (both shaped like `new_stats()`)."""
    for name, value in part.items():
        if isinstance(value, int):
            total[name] = total.get(name, 0) + value
        elif name in ("skipped", "verdicts"):
            for key, n in value.items():
                total[name][key] = total[name].get(key, 0) + n
        else:
            for key, row in value.items():
                _bump(total[name], key, *row)
    return total


def scan_messages(scanner, conversation: Conversation, raw_messages: Sequence[dict], options: Options,
                  key: str) -> UnitResult:
    """Scan one unit's messages in batches (one nlp.pipe per batch) and turn them into report lines and counts."""
    return scan_units(scanner, conversation, [(key, raw_messages)], options)[0]


def scan_units(scanner, conversation: Conversation, units: Sequence[tuple[str, Sequence[dict]]],
               options: Options) -> list[UnitResult]:
    """Several units of one conversation scanned together: batches span day files (a day is often a handful of
    messages, and nlp.pipe is faster on full batches), results are split back per unit for the checkpoint."""
    started = time.perf_counter()
    results: list[UnitResult] = []
    todo: list[tuple[UnitResult, dict, dict]] = []
    for key, raw_messages in units:
        result = UnitResult(key, stats=new_stats())
        results.append(result)
        for raw in raw_messages:
            readable = _readable(raw, result.stats)
            if readable is not None:
                todo.append((result, *readable))
    for start in range(0, len(todo), CHUNK_LINES):
        chunk = todo[start:start + CHUNK_LINES]
        for (result, message, _), outcome in zip(chunk, _scan_chunk(scanner, conversation, [p for *_, p in chunk])):
            if outcome is None:
                _count_skip(result.stats, "scan failed")
                continue
            _record(scanner, conversation, message, outcome, options, result)
    for result in results:
        result.seconds = (time.perf_counter() - started) / len(results)
    return results


def _readable(message: Any, stats: dict) -> tuple[dict, dict] | None:
    """The message to scan (an edit's new version) and what it shows, or None with the reason counted."""
    if not isinstance(message, dict):
        return None
    if message.get("subtype") == "message_changed" and isinstance(message.get("message"), dict):
        message = {**message["message"], "edited": message["message"].get("edited") or {"ts": message.get("ts")}}
    stats["messages"] += 1
    subtype = message.get("subtype")
    if subtype in SYSTEM_SUBTYPES:
        _count_skip(stats, "system message (join, leave, rename)")
    elif subtype == "message_deleted":
        _count_skip(stats, "deleted message")
    elif not isinstance(message.get("ts"), str):
        _count_skip(stats, "no ts")
    elif not (payload := content_payload(message)):
        _count_skip(stats, "no text, blocks, attachments or file titles")
    else:
        return message, payload
    return None


def _count_skip(stats: dict, reason: str) -> None:
    stats["skipped"][reason] = stats["skipped"].get(reason, 0) + 1


def _scan_chunk(scanner, conversation: Conversation, payloads: list[dict]) -> list:
    """Outcomes for a chunk; when the batch fails, message by message so one bad message costs only itself."""
    ids = [conversation.id] * len(payloads)
    name = conversation.name if conversation.kind in ("public", "private") else None
    try:
        return scanner.scan_many(payloads, channel_ids=ids, channel_name=name)
    except DetectionError:
        outcomes = []
        for payload in payloads:
            try:
                outcomes.append(scanner.scan(payload, channel_id=conversation.id, channel_name=name))
            except DetectionError:
                outcomes.append(None)
        return outcomes


def _record(scanner, conversation: Conversation, message: dict, outcome, options: Options,
            result: UnitResult) -> None:
    stats = result.stats
    ts, thread_ts, who = message["ts"], message.get("thread_ts"), poster(message)
    day = day_of(ts)
    stats["scanned"] += 1
    stats["edited"] += bool(message.get("edited"))
    stats["replies"] += bool(thread_ts and thread_ts != ts)
    stats["bots"] += bool(message.get("bot_id") or message.get("subtype") == "bot_message")
    stats["files"] += len(message.get("files") or ())
    acted = [a for a in outcome.decision.actions if a.action != "allow"]
    hit = 1 if acted else 0
    _bump(stats["channels"], conversation.id, 1, hit, len(acted))
    _bump(stats["days"], day, 1, hit)
    if not acted:
        return
    stats["with_findings"] += 1
    stats["findings"] += len(acted)
    stats["verdicts"][outcome.verdict] = stats["verdicts"].get(outcome.verdict, 0) + 1
    _bump(stats["posters"], who, 1, len(acted))
    for table, attribute in (("entities", "entity_type"), ("rules", "rule")):
        per_message: dict[str, int] = {}
        for a in acted:
            name = getattr(a.finding, attribute)
            per_message[name] = per_message.get(name, 0) + 1
        for name, n in per_message.items():
            _bump(stats[table], name, 1, n)
    link = permalink(options.workspace_url, conversation.id, ts, thread_ts)
    record = result_record(f"{conversation.id}/{ts}", outcome)
    del record["redacted"]  # NOTE: a warn finding is not redacted there; reports carry shapes only
    record.update({"channel": conversation.id, "ts": ts, "thread_ts": thread_ts, "user": who,
                   "permalink": link})
    result.findings.append(json.dumps(record, ensure_ascii=False))
    external = bool(options.team_id and message.get("user_team") and message["user_team"] != options.team_id)
    if options.plan and outcome.verdict in PLAN_ACTION:
        result.plan.append(json.dumps({
            "channel": conversation.id, "ts": ts, "thread_ts": thread_ts, "user": message.get("user"),
            "bot_id": message.get("bot_id"), "action": PLAN_ACTION[outcome.verdict], "verdict": outcome.verdict,
            "entities": sorted({a.finding.entity_type for a in acted}),
            "rules": sorted({a.finding.rule for a in acted}), "external": external, "permalink": link}))
    rank = list(risk(outcome))
    if len(result.top) >= TOP_MESSAGES and rank <= result.top[-1]["risk"]:
        return  # cannot make this unit's top, so it cannot make the report's: no excerpt to build
    result.top.append({"risk": rank, "channel": conversation.id, "ts": ts, "day": day,
                       "user": who, "verdict": outcome.verdict, "permalink": link,
                       "entities": sorted({a.finding.entity_type for a in acted}),
                       "excerpt": excerpt(scanner, outcome)})
    result.top = sorted(result.top, key=lambda t: t["risk"], reverse=True)[:TOP_MESSAGES]


def excerpt(scanner, outcome) -> str:
    """The message's visible text with every finding replaced, cut to EXCERPT_CHARS."""
    edits = redact_everything(scanner, outcome)
    parts = [edits.get(s.path, s.text) for s in outcome.segments]
    text = " · ".join(dict.fromkeys(p.strip() for p in parts if p.strip()))  # blocks often repeat the text
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"


# --- the report folder --------------------------------------------------------------------------------------


class ReportDir:
    """findings.jsonl (+ the plan) and checkpoint.jsonl in one folder; safe to kill at any moment.

    Commit order per unit: findings and plan lines appended and fsynced, then one checkpoint line with the new
    offsets. On open, anything after the last checkpointed offsets (a unit that was being written when the run
    died) is cut off, so a resumed run writes that unit again exactly once.
    """

    def __init__(self, out: Path, source: str, plan: Path | None = None):
        self.out, self.source, self.plan_path = out, source, plan
        self.done: set[str] = set()
        self.totals = new_stats()
        self.top: list[dict] = []
        self.state: dict = {}
        self._findings = self._plan = self._checkpoint = None

    @property
    def findings_path(self) -> Path:
        return self.out / FINDINGS

    def open(self) -> ReportDir:
        self.out.mkdir(parents=True, exist_ok=True)
        state_path = self.out / STATE
        if state_path.exists():
            self.state = json.loads(state_path.read_text(encoding="utf-8"))
            if self.state.get("source") != self.source:
                raise HistoryError(messages.history_other_source(str(self.out), self.state.get("source", "?")))
        else:
            self.state = {"source": self.source, "runs": []}
        offsets = {"findings": 0, "plan": 0}
        checkpoint = self.out / CHECKPOINT
        if checkpoint.exists():
            good = 0
            with checkpoint.open("rb") as handle:
                for raw in handle:
                    if not raw.endswith(b"\n"):
                        break  # a line cut by a kill: that unit was not committed
                    entry = json.loads(raw)
                    good += len(raw)
                    self.done.add(entry["key"])
                    offsets = entry["offsets"]
                    merge_stats(self.totals, entry["stats"])
                    self.top = keep_top(self.top + entry["top"])
            os.truncate(checkpoint, good)
        plan = str(self.plan_path) if self.plan_path else None
        if self.done and self.state.get("plan") != plan:  # a plan must cover the whole scan, or not exist
            raise HistoryError(messages.history_other_plan(str(self.out), self.state.get("plan")))
        self.state["plan"] = plan
        self._save_state()  # before any finding: a killed first run still names its source and plan
        self._findings = _open_at(self.findings_path, offsets["findings"])
        if self.plan_path:
            self._plan = _open_at(self.plan_path, offsets.get("plan", 0))
        self._checkpoint = checkpoint.open("ab")
        return self

    def commit(self, result: UnitResult) -> None:
        if result.key in self.done:
            return
        _append(self._findings, result.findings)
        if self._plan is not None:
            _append(self._plan, result.plan)
        merge_stats(self.totals, result.stats)
        before = {id(t) for t in self.top}
        self.top = keep_top(self.top + result.top)
        entered = [t for t in self.top if id(t) not in before]  # only these can still be in the final top
        entry = {"key": result.key, "offsets": {"findings": self._findings.tell(),
                                                "plan": self._plan.tell() if self._plan else 0},
                 "stats": result.stats, "top": entered, "seconds": round(result.seconds, 3)}
        self._checkpoint.write(json.dumps(entry, ensure_ascii=False).encode() + b"\n")
        self._checkpoint.flush()
        self.done.add(result.key)

    def close(self) -> None:
        for handle in (self._findings, self._plan, self._checkpoint):
            if handle is not None:
                handle.close()
        self._findings = self._plan = self._checkpoint = None

    def record_run(self, run: dict, conversations: dict[str, dict], posters: dict[str, str]) -> None:
        self.state["runs"].append(run)
        self.state.setdefault("conversations", {}).update(conversations)
        self.state["posters"] = posters
        self._save_state()

    def _save_state(self) -> None:
        temporary = self.out / (STATE + ".tmp")
        temporary.write_text(json.dumps(self.state, ensure_ascii=False, indent=1), encoding="utf-8")
        temporary.replace(self.out / STATE)


def keep_top(entries: list[dict]) -> list[dict]:
    return sorted(entries, key=lambda t: (t["risk"], t["channel"], t["ts"]), reverse=True)[:TOP_MESSAGES]


def _open_at(path: Path, offset: int):
    """Open for appending after cutting the file back to `offset` (what the last checkpoint vouches for)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("ab")
    handle.truncate(offset)
    handle.seek(offset)
    return handle


def _append(handle, lines: list[str]) -> None:
    if lines:
        handle.write(("\n".join(lines) + "\n").encode("utf-8"))
    handle.flush()
    os.fsync(handle.fileno())


# --- Slack exports ------------------------------------------------------------------------------------------


class Export:
    """A workspace export, zipped or unpacked: metadata JSON at the top, one folder per conversation of day files."""

    def __init__(self, path: Path):
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self.prefix = ""
        if path.is_file():
            try:
                self._zip = zipfile.ZipFile(path)
            except zipfile.BadZipFile:
                raise HistoryError(messages.history_not_export(str(path), "not a zip file")) from None
            names = self._zip.namelist()
            tops = [n for n in names if PurePosixPath(n).name in ("users.json", *METADATA_FILES)]
            if tops:
                self.prefix = str(PurePosixPath(min(tops, key=len)).parent).lstrip(".")
                self.prefix = self.prefix + "/" if self.prefix else ""
        elif not path.is_dir():
            raise HistoryError(messages.history_not_export(str(path), "no such file or folder"))
        if not any(self.exists(name) for name in ("users.json", *METADATA_FILES)):
            raise HistoryError(messages.history_not_export(str(path), "no users.json or channels.json"))

    def exists(self, name: str) -> bool:
        if self._zip is not None:
            try:
                self._zip.getinfo(self.prefix + name)
                return True
            except KeyError:
                return False
        return (self.path / name).is_file()

    def read_json(self, name: str) -> Any:
        if self._zip is not None:
            with self._zip.open(self.prefix + name) as handle:
                return json.load(handle)
        with (self.path / name).open("rb") as handle:
            return json.load(handle)

    def conversations(self) -> dict[str, Conversation]:
        """Folder name -> conversation, from channels/groups/dms/mpims.json (folders without an entry are kept)."""
        by_folder: dict[str, Conversation] = {}
        for filename, kind in METADATA_FILES.items():
            if not self.exists(filename):
                continue
            for entry in self.read_json(filename) or ():
                if not isinstance(entry, dict) or not entry.get("id"):
                    continue
                folder = entry.get("name") if kind in ("public", "private", "mpim") else entry["id"]
                by_folder[folder or entry["id"]] = Conversation(entry["id"], entry.get("name") or entry["id"], kind,
                                                                folder or entry["id"])
        return by_folder

    def users(self) -> list[dict]:
        return [u for u in (self.read_json("users.json") if self.exists("users.json") else ()) if isinstance(u, dict)]

    def day_files(self) -> Iterator[tuple[str, str, str, int]]:
        """(folder, day, member name, bytes) for every `<folder>/<day>.json`, in a stable order."""
        if self._zip is not None:
            entries = [(i.filename[len(self.prefix):], i.file_size) for i in self._zip.infolist()
                       if i.filename.startswith(self.prefix) and not i.is_dir()]
        else:
            entries = [(str(p.relative_to(self.path).as_posix()), p.stat().st_size) for p in self.path.glob("*/*.json")]
        for name, size in sorted(entries):
            parts = PurePosixPath(name).parts
            if len(parts) == 2 and parts[1].endswith(".json"):
                yield parts[0], parts[1][:-5], name, size

    def read_day(self, name: str) -> list:
        data = self.read_json(name)
        return data if isinstance(data, list) else []


def team_of(users: list[dict]) -> str:
    teams: dict[str, int] = {}
    for user in users:
        if user.get("team_id"):
            teams[user["team_id"]] = teams.get(user["team_id"], 0) + 1
    return max(teams, key=teams.get) if teams else ""


def poster_names(users: list[dict]) -> dict[str, str]:
    names = {}
    for user in users:
        profile = user.get("profile") or {}
        name = profile.get("display_name") or profile.get("real_name") or user.get("real_name") or user.get("name")
        if user.get("id") and name:
            names[user["id"]] = name
    return names


# --- running a scan over units ------------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}  # set in the parent before forking: scanner, export path, options


def _export_job(units: tuple[Unit, ...]) -> list[UnitResult]:
    """Worker side: read a few day files of one conversation and scan them together."""
    export = _WORKER.get("export")
    if export is None:  # NOTE: one zip handle per worker process; a ZipFile must not be shared across a fork
        export = _WORKER["export"] = Export(_WORKER["export_path"])
    readable, broken = [], []
    for unit in units:
        try:
            readable.append((unit.key, export.read_day(unit.key)))
        except (ValueError, zipfile.BadZipFile, OSError):
            result = UnitResult(unit.key, stats=new_stats())
            _count_skip(result.stats, "day file is not valid JSON")
            broken.append(result)
    results = scan_units(_WORKER["scanner"], units[0].conversation, readable, _WORKER["options"]) + broken
    rss, cpu = peak_rss_mb(), cpu_seconds()
    for result in results:
        result.worker = (os.getpid(), rss, cpu)
    return results


def cpu_seconds() -> float:
    """CPU time (user + system) this process has used so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux reports KiB


def jobs_of(units: list[Unit], job_bytes: int = 96 * 1024) -> list[tuple[Unit, ...]]:
    """Consecutive day files of the same conversation, up to about `job_bytes` of JSON per job."""
    jobs: list[tuple[Unit, ...]] = []
    current: list[Unit] = []
    for unit in units:
        if current and (unit.conversation != current[0].conversation or sum(u.size for u in current) >= job_bytes):
            jobs.append(tuple(current))
            current = []
        current.append(unit)
    if current:
        jobs.append(tuple(current))
    return jobs


@dataclass
class ExportWork:
    """What an export scan will do: the units left, and what was skipped before scanning."""

    units: list[Unit]
    conversations: dict[str, dict]
    skipped_files: dict[str, int]
    done_files: int
    total_files: int


def plan_export(export: Export, filters: Filters, done: set[str], names: bool) -> ExportWork:
    by_folder = export.conversations()
    units, skipped, seen, done_count, total = [], {}, {}, 0, 0
    for folder, day, name, size in export.day_files():
        conversation = by_folder.get(folder) or Conversation(folder, folder, "unknown", folder)
        total += 1
        reason = filters.skip_reason(conversation, day)
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        seen[conversation.id] = {"label": conversation.label(names), "kind": conversation.kind}
        if name in done:
            done_count += 1
            continue
        units.append(Unit(name, conversation, size, day))
    return ExportWork(units, seen, skipped, done_count, total)


def run_units(job: Callable[[tuple[Unit, ...]], list[UnitResult]], units: list[Unit], report: ReportDir,
              workers: int, progress: Callable[[Unit, UnitResult], None] | None = None) -> dict[int, tuple]:
    """Scan units in jobs on `workers` forked processes (the scanner was built before the fork) and commit each
    unit; returns (peak RSS MB, CPU s) of each process that scanned."""
    by_key = {u.key: u for u in units}
    peaks: dict[int, tuple] = {}
    jobs = jobs_of(units)

    def commit(results: list[UnitResult]) -> None:
        for result in results:
            report.commit(result)
            if result.worker:
                pid, rss, cpu = result.worker
                seen = peaks.get(pid, (0.0, 0.0))
                peaks[pid] = (max(seen[0], rss), max(seen[1], cpu))
            if progress:
                progress(by_key[result.key], result)

    if workers > 1 and len(jobs) > 1:
        context = multiprocessing.get_context("fork")
        with context.Pool(workers) as pool:
            for results in pool.imap_unordered(job, jobs, chunksize=1):
                commit(results)
    else:
        for one in jobs:
            commit(job(one))
    return peaks


def run_export_scan(scanner, export_path: Path, out: Path, *, workers: int = 1, filters: Filters = Filters(),
                    plan_path: Path | None = None, names: bool = False, workspace_url: str = "",
                    show_progress: bool = False, stderr=None) -> dict:
    """Scan an export into `out` (resuming what a previous run committed) and write the report files."""
    from slack_pii.tools.history_report import write_report

    started_at, started, cpu_before = time.time(), time.perf_counter(), cpu_seconds()
    export = Export(export_path)
    report = ReportDir(out, str(export_path.resolve()), plan_path).open()
    try:
        work = plan_export(export, filters, report.done, names)
        users = export.users()
        options = Options(workspace_url=workspace_url, team_id=team_of(users), plan=plan_path is not None)
        _WORKER.update(scanner=scanner, export_path=export_path, options=options, export=None)
        with Progress(work.units, report, show_progress, stderr) as bar:
            peaks = run_units(_export_job, work.units, report, workers, bar.advance)
        seconds = time.perf_counter() - started
        run = {"started": datetime.fromtimestamp(started_at, timezone.utc).isoformat(timespec="seconds"),
               "seconds": round(seconds, 2), "units_scanned": len(work.units), "units_resumed": work.done_files,
               "units_total": work.total_files, "skipped_units": work.skipped_files, "workers": workers,
               "filters": filters.describe(), "source": "export", "config_version": scanner.config_version,
               "messages": bar.messages, "messages_per_s": round(bar.messages / max(seconds, 1e-6), 1),
               "peak_rss_mb": {"parent": peak_rss_mb(), "workers": sorted((p[0] for p in peaks.values()),
                                                                          reverse=True)},
               # NOTE: CPU seconds spent scanning (workers, or this process since the run began): on a shared
               # machine msgs/s measures the share of the cores we got; msgs per CPU second does not
               "cpu_s": round(sum(cpu - (cpu_before if pid == os.getpid() else 0.0)
                                  for pid, (_, cpu) in peaks.items()), 2)}
        report.record_run(run, work.conversations, poster_names(users) if names else {})
    finally:
        report.close()
        _WORKER.clear()
    write_report(out, report)
    return {"run": run, "totals": report.totals}


class Progress:
    """A rich progress bar on a terminal (messages/s, ETA by bytes, findings so far); silent otherwise."""

    def __init__(self, units: list[Unit], report: ReportDir, enabled: bool, stderr=None):
        self.enabled, self.stderr = enabled and bool(units), stderr
        self.total = sum(u.size for u in units) or len(units)
        self.by_size = any(u.size for u in units)
        self.messages = 0
        self.findings = report.totals["with_findings"]
        self.started = time.perf_counter()
        self._bar = self._task = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress as Bar, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._bar = Bar(TextColumn("scanning"), BarColumn(), TextColumn("{task.fields[messages]:,} msgs"),
                            TextColumn("{task.fields[rate]:,.0f} msg/s"), TimeElapsedColumn(),
                            TextColumn("ETA"), TimeRemainingColumn(),
                            TextColumn("[magenta]{task.fields[findings]:,} with findings"),
                            console=Console(file=self.stderr), transient=False)
            self._bar.start()
            self._task = self._bar.add_task("scan", total=self.total, messages=0, rate=0.0, findings=self.findings)
        return self

    def advance(self, unit: Unit, result: UnitResult) -> None:
        self.messages += result.stats["messages"]
        self.findings += result.stats["with_findings"]
        if self._bar is not None:
            rate = self.messages / max(time.perf_counter() - self.started, 1e-6)
            self._bar.update(self._task, advance=unit.size if self.by_size else 1, messages=self.messages,
                             rate=rate, findings=self.findings)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()


def parse_day(value: str) -> date:
    import argparse

    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError("use a date like 2024-05-01") from None


def split_names(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())
