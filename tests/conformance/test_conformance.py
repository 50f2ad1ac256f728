"""Peer test vectors (Presidio, gitleaks, detect-secrets) through our real scanner, scored per source.

What counts (see README.md here): a positive is caught when findings of its mapped category cover >= 80 % of
the expected span; a negative is flagged when any finding of its category appears anywhere in the text. Soft
rows, out-of-scope entities and listed disagreements are reported in results.md, not asserted.
"""

from __future__ import annotations

import pytest
import yaml

from tests.conformance import vectors

RESULTS = vectors.HERE / "results.md"
LABELLING = vectors.HERE / "LABELLING.md"  # a copy of ../shared/LABELLING.md, the standard


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


def test_every_disagreement_is_justified_by_labelling_md():
    """An exclusion stands only on the labelling standard's own words; anything else counts as a failure."""
    standard = LABELLING.read_text(encoding="utf-8")
    data = yaml.safe_load((vectors.HERE / "disagreements.yaml").read_text(encoding="utf-8"))
    unjustified = [item["reason"][:60] for item in data["disagreements"]
                   if not item.get("labelling") or item["labelling"] not in standard]
    assert not unjustified, f"disagreements without a verbatim LABELLING.md quote: {unjustified}"


def test_labelling_copy_is_the_shared_standard():
    shared = vectors.HERE.parents[2] / "shared" / "LABELLING.md"
    if not shared.exists():
        pytest.skip(f"{shared} not beside this checkout")
    assert LABELLING.read_text(encoding="utf-8") == shared.read_text(encoding="utf-8"), \
        f"copy {shared} to {LABELLING}"


def test_results_file_is_current(reports):
    """results.md is the committed record of the numbers: regenerate it with
    `python -m tests.conformance.vectors > tests/conformance/results.md` when they change."""
    assert RESULTS.read_text(encoding="utf-8") == vectors.render_results(reports), \
        "tests/conformance/results.md is stale: python -m tests.conformance.vectors > tests/conformance/results.md"
