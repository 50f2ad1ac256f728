"""Print the conformance table at the end of the run (the numbers are also written to results.md)."""

from __future__ import annotations

from tests.conformance import vectors


def pytest_terminal_summary(terminalreporter):
    if vectors.LAST_REPORTS:
        terminalreporter.write_sep("=", "conformance (peer vectors)")
        terminalreporter.write_line(vectors.render(vectors.LAST_REPORTS))
