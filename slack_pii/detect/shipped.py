"""Where the shipped YAML lives: `recognizers/` and `models/` at the top of a source checkout, or the copies
that a wheel install carries inside the package (`slack_pii/shipped/`, see pyproject.toml's package-dir)."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent


def shipped_dir(name: str) -> Path:
    """The shipped data folder `name` (recognizers or models), installed or in a checkout."""
    installed = _PACKAGE / "shipped" / name
    return installed if installed.is_dir() else _PACKAGE.parent / name


RECOGNIZERS_DIR = shipped_dir("recognizers")
MODELS_DIR = shipped_dir("models")
