"""Peer test vectors (Presidio, gitleaks, detect-secrets) through our real scanner, scored per source.

What counts (see README.md here): a positive is caught when findings of its mapped category cover >= 80 % of
the expected span; a negative is flagged when any finding of its category appears anywhere in the text. Soft
rows, out-of-scope entities and listed disagreements are reported in results.md, not asserted.
"""

from __future__ import annotations

import pytest

from tests.conformance import vectors

RESULTS = vectors.HERE / "results.md"


@pytest.fixture(scope="module")
def reports(scanner):
    reports = vectors.evaluate(scanner)
    vectors.LAST_REPORTS.update(reports)
    return reports


@pytest.mark.parametrize("source", vectors.SOURCES)
def test_positives_caught(reports, source):
    report = reports[source]
    missed = [f"{c.entity}: {c.row.id}" for c in report.failures() if c.kind == "positive"]
    assert report.caught_rate >= vectors.MIN_CAUGHT, f"{source}: {report.caught}/{report.positives} caught; " \
        f"missed (first 10): {missed[:10]}"


@pytest.mark.parametrize("source", vectors.SOURCES)
def test_negatives_not_flagged(reports, source):
    report = reports[source]
    flagged = [f"{c.entity}: {c.row.id}" for c in report.failures() if c.kind == "negative"]
    assert report.flagged_rate <= vectors.MAX_FLAGGED, f"{source}: {report.flagged}/{report.negatives} flagged; " \
        f"(first 10): {flagged[:10]}"


def test_disagreements_name_real_rows():
    """Every listed disagreement points at a row that exists, so the list cannot silently rot."""
    ids = {row.id for source in vectors.SOURCES for row in vectors.load_rows(source)}
    unknown = sorted(set(vectors.load_disagreements()) - ids)
    assert not unknown, f"disagreements.yaml names rows that do not exist: {unknown[:5]}"


def test_results_file_is_current(reports):
    """results.md is the committed record of the numbers; regenerate it when they change."""
    text = vectors.render_results(reports)
    if not RESULTS.exists() or RESULTS.read_text(encoding="utf-8") != text:
        RESULTS.write_text(text, encoding="utf-8")
