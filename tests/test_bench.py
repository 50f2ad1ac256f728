"""`slack-pii bench` smoke test: a tiny corpus, the output has every figure for both engines. Never timings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIGURES = {"startup_s", "p50_ms", "p95_ms", "p99_ms", "single_msgs_per_s", "batch_msgs_per_s",
           "batch_2_workers_msgs_per_s", "peak_rss_mb"}


def test_bench_json_has_every_figure_for_both_engines():
    result = subprocess.run([sys.executable, "-m", "slack_pii", "bench", "--count", "30", "--json"], cwd=REPO,
                            env={**os.environ}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["count"] == 30
    for engine in ("ours", "stock", "stock_ner"):
        assert FIGURES <= set(report[engine]), engine
        assert all(report[engine][name] > 0 for name in FIGURES), engine
        assert report[engine]["p50_ms"] <= report[engine]["p95_ms"] <= report[engine]["p99_ms"]
    assert 0 <= report["ours"]["ner_gate_rate"] <= 1
    assert set(report["ratios"]) >= {"p50_ms", "best_batch"} and set(report["ratios_ner"]) >= {"p50_ms", "best_batch"}
    assert set(report["targets"]) == {"p50_ms", "p99_ms", "batch_vs_stock", "batch_vs_stock_ner"}
    assert any("offline" in note for note in report["notes"])
    # Progress (what `make bench` shows while it works) goes to stderr, phase by phase; stdout stays one JSON.
    for step in ("generating 30 messages", "measuring our engine", "our engine built in", "our engine: batches of",
                 "measuring stock Presidio", "stock Presidio built in", "stock Presidio: batches of"):
        assert step in result.stderr, step


def test_bench_table_without_stock():
    result = subprocess.run([sys.executable, "-m", "slack_pii", "bench", "--count", "30", "--no-stock"], cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    for row in ("start-up (s)", "single p50 (ms)", "single p99 (ms)", "batch msgs/s (2 workers)", "peak RSS (MB)"):
        assert row in result.stdout
    assert "stock Presidio" not in result.stdout
