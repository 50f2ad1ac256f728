"""`scan --jsonl`: the batch contract for security teams and tooling.

Lines are read in chunks; each chunk goes through `Scanner.scan_many` (one `nlp.pipe` call), and chunks are
spread over worker processes forked after the engine is built (nothing is rebuilt per worker). Output order
matches input order. A bad line becomes `{"id", "line", "error"}` and the batch continues.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Iterable, Iterator
from typing import IO, Any

from slack_pii.detect.slack_text import path_text

CHUNK_LINES = 128
_WORKER_SCANNER = None  # set in the parent before forking; read by workers


def parse_line(number: int, line: str) -> tuple[Any, Any, str | None]:
    """(id, text-or-payload, error). Errors name the line and the problem, never the content."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, None, f"line {number}: not valid JSON (column {exc.colno})"
    if not isinstance(record, dict):
        return None, None, f"line {number}: expected a JSON object"
    record_id = record.get("id")
    if isinstance(record.get("text"), str):
        return record_id, record["text"], None
    if isinstance(record.get("payload"), dict):
        return record_id, record["payload"], None
    return record_id, None, f"line {number}: needs a string \"text\" or an object \"payload\""


def result_record(record_id: Any, outcome, explain: bool = False) -> dict:
    """One result in the stable batch contract (plus `path` for payload findings, `explain` on request)."""
    findings = []
    for item in outcome.decision.actions:
        f = item.finding
        entry = {"entity_type": f.entity_type, "start": f.start, "end": f.end, "score": round(f.score, 4),
                 "action": item.action, "rule": f.rule}
        if f.path:
            entry["path"] = path_text(f.path)
        if explain:
            entry["explain"] = {"pattern": f.pattern, "category": f.category, "context_words": list(f.context_words),
                                "reason": item.reason}
        findings.append(entry)
    record = {"id": record_id, "findings": findings, "verdict": outcome.verdict, "redacted": outcome.redacted}
    if explain:
        record["suppressed"] = [{"entity_type": s.entity_type, "rule": s.rule, "reason": s.reason}
                                for s in outcome.suppressed]
        record["reasons"] = list(outcome.decision.reasons)
    return record


def _scan_chunk(chunk: list[tuple[int, str]], explain: bool = False,
                channel: dict | None = None) -> list[tuple[str, str | None]]:
    """Output lines for one chunk, each with its error message (or None)."""
    from slack_pii.errors import DetectionError

    scanner = _WORKER_SCANNER
    parsed = [(number,) + parse_line(number, line) for number, line in chunk]
    good = [(number, rid, item) for number, rid, item, error in parsed if error is None]
    results: dict[int, dict] = {}
    try:
        outcomes = scanner.scan_many([item for _, _, item in good], channel_ids=[(channel or {}).get("channel_id")] * len(good),
                                     channel_name=(channel or {}).get("channel_name"))
        for (number, rid, _), outcome in zip(good, outcomes):
            results[number] = result_record(rid, outcome, explain)
    except DetectionError:
        for number, rid, item in good:  # one bad message must not sink its chunk: retry one by one
            try:
                results[number] = result_record(rid, scanner.scan(item), explain)
            except DetectionError as exc:
                results[number] = {"id": rid, "line": number, "error": str(exc)}
    lines = []
    for number, rid, _, error in parsed:
        record = results.get(number) or {"id": rid, "line": number, "error": error}
        lines.append((json.dumps(record, ensure_ascii=False), record.get("error")))
    return lines


def _chunks(lines: Iterable[str]) -> Iterator[list[tuple[int, str]]]:
    chunk: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        chunk.append((number, line))
        if len(chunk) >= CHUNK_LINES:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run_batch(scanner, stdin: IO[str], stdout: IO[str], stderr: IO[str], *, workers: int = 1,
              explain: bool = False, channel: dict | None = None) -> int:
    """Exit 0 even when some lines were bad: each bad line is reported in place (stdout) and on stderr."""
    global _WORKER_SCANNER
    _WORKER_SCANNER = scanner
    progress = _progress(stderr)
    try:
        if workers > 1:
            context = multiprocessing.get_context("fork")
            with context.Pool(workers) as pool:
                _emit(pool.imap(_ChunkJob(explain, channel), _chunks(stdin), chunksize=1), stdout, stderr, progress)
        else:
            _emit((_scan_chunk(c, explain, channel) for c in _chunks(stdin)), stdout, stderr, progress)
    finally:
        if progress:
            progress.stop()
    return 0


class _ChunkJob:
    def __init__(self, explain: bool, channel: dict | None):
        self.explain, self.channel = explain, channel

    def __call__(self, chunk):
        return _scan_chunk(chunk, self.explain, self.channel)


def _emit(results: Iterable[list[tuple[str, str | None]]], stdout: IO[str], stderr: IO[str], progress) -> None:
    task = progress.add_task("scanning", total=None) if progress else None
    for lines in results:
        for line, error in lines:
            if error:
                print(f"slack-pii scan: {error}", file=stderr)
            stdout.write(line + "\n")
        if progress:
            progress.advance(task, len(lines))
    stdout.flush()


def _progress(stderr: IO[str]):
    if not stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import MofNCompleteColumn, Progress, SpinnerColumn, TimeElapsedColumn

    progress = Progress(SpinnerColumn(), "{task.description}", MofNCompleteColumn(), TimeElapsedColumn(),
                        console=Console(file=stderr))
    progress.start()
    return progress
