"""The measurement behind the regex time limit (REGEX_SECONDS_FLOOR, REGEX_SECONDS_PER_CHAR) in slack_pii/detect/rules.py: the slowest benign regex call.

For every rule pattern and every text in the shipped labelled sample, the conformance vectors and a generated
corpus, time the matching alone (what runs under the limit) as the scanner feeds it (the folded scan text of
each segment). Each (pattern, text) is timed `--repeat` times and the fastest kept, so the number is the cost of
the regex and not of whatever else the machine was doing; the worst call, and the worst per character
of a long text, are the budget's basis.

    .venv/bin/python bench/regex_budget.py            # prints the worst calls and the suggested budget
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from slack_pii.detect.rules import REGEX_SECONDS_FLOOR, REGEX_SECONDS_PER_CHAR, load_rules
from slack_pii.detect.slack_text import extract_segments

ROOT = Path(__file__).resolve().parent.parent
FACTOR = 20  # the budget is at least this many times the slowest benign call
LONG = 500  # texts at least this long give the per-character cost (shorter ones are all fixed overhead)


def texts(corpus_count: int) -> list[str]:
    from slack_pii.tools.corpus import generate

    found = [json.loads(line)["text"] for line in (ROOT / "tests/data/labelled_sample.jsonl").open()]
    for path in sorted((ROOT / "tests/conformance/data").glob("*.jsonl")):
        found += [row["text"] for row in map(json.loads, path.open()) if "text" in row]
    found += [record["text"] for record in generate(corpus_count, 1)]
    return [segment.scan.text for text in found for segment in extract_segments(text)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--corpus", type=int, default=1000, help="generated messages added to the shipped data")
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args()
    ruleset = load_rules(check_examples=False)
    scan_texts = texts(args.corpus)
    patterns = [(rule.id, p) for rule in ruleset.rules for p in rule.patterns]
    print(f"{len(scan_texts)} texts x {len(patterns)} patterns, best of {args.repeat}", flush=True)
    worst: list[tuple[float, str, int]] = []
    per_char: list[tuple[float, str, int]] = []
    for rule_id, pattern in patterns:
        slowest, at, densest, dense_at = 0.0, 0, 0.0, 0
        for index, text in enumerate(scan_texts):
            best = float("inf")
            for _ in range(args.repeat):
                started = time.perf_counter()
                for _match in pattern.regex.finditer(text):
                    pass
                best = min(best, time.perf_counter() - started)
            if best > slowest:
                slowest, at = best, index
            if len(text) >= LONG and best / len(text) > densest:
                densest, dense_at = best / len(text), index
        worst.append((slowest, f"{rule_id} / {pattern.name}", len(scan_texts[at])))
        per_char.append((densest, f"{rule_id} / {pattern.name}", len(scan_texts[dense_at])))
    worst.sort(reverse=True)
    per_char.sort(reverse=True)
    print("slowest calls:")
    for seconds, name, length in worst[:args.top]:
        print(f"  {seconds * 1000:8.3f} ms  {name}  (text of {length} chars)")
    print(f"slowest per character (texts of {LONG}+ chars):")
    for seconds, name, length in per_char[:args.top]:
        print(f"  {seconds * 1e6:8.3f} us/char  {name}  (text of {length} chars)")
    slowest, densest = worst[0][0], per_char[0][0]
    print(f"budget floor {REGEX_SECONDS_FLOOR * 1000:.0f} ms = {REGEX_SECONDS_FLOOR / slowest:.0f}x the slowest call; "
          f"{REGEX_SECONDS_PER_CHAR * 1e6:.0f} us/char = {REGEX_SECONDS_PER_CHAR / densest:.0f}x the densest "
          f"(wanted >= {FACTOR}x each)")


if __name__ == "__main__":
    main()
