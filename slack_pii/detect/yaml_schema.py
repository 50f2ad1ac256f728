"""The YAML files security teams edit (rules, policy) are checked as pydantic models: this is what the two share.

Every error becomes one line naming the key and the fix; a value is never echoed (a policy may hold allow-listed
values).
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator


class StrictModel(BaseModel):
    """A YAML mapping whose keys are checked: a misspelt key is an error, not a silently ignored setting."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _empty_sections_are_defaults(cls, data: Any) -> Any:
        # `channels:` with nothing under it is YAML null: treat it as absent (the default), as people mean.
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


# --- saying what is wrong -----------------------------------------------------------------------------------

_FIX = {
    "missing": "add it (`slack-pii check-config --schema {kind}` lists what is required)",
    "extra_forbidden": "remove it or fix its spelling (`slack-pii check-config --schema {kind}` lists the keys)",
    "dict_type": "make it a mapping (key: value lines, indented under it)",
    "list_type": "make it a list (`- item` lines, or [a, b])",
    "model_type": "make it a mapping (key: value lines, indented under it)",
    "model_attributes_type": "make it a mapping (key: value lines, indented under it)",
    "greater_than_equal": "use a number from 0.0 to 1.0 (0.5 is the shipped default)",
    "less_than_equal": "use a number from 0.0 to 1.0 (0.5 is the shipped default)",
    "greater_than": "use a number above the minimum",
    "float_parsing": "use a number from 0.0 to 1.0",
    "float_type": "use a number from 0.0 to 1.0",
    "bool_parsing": "use true or false",
    "bool_type": "use true or false",
    "int_parsing": "use a whole number",
    "string_type": "quote it as text",
    "literal_error": "use one of the values listed",
    "too_short": "add at least one entry",
}


def explain_errors(exc: ValidationError, kind: str = "policy") -> list[tuple[str, str]]:
    """Pydantic's errors as (`key.path: what is wrong`, fix). Never echoes the offending value beyond its type:
    config files can hold allow-listed values."""
    out = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = [str(part) for part in error["loc"] if part != "action"]
        key = ".".join(loc) or "(top level)"
        message = error["msg"]
        if error["type"] == "literal_error" and error["loc"][-1:] == ("action",):
            message = f"unknown action; {message[0].lower()}{message[1:]}"
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        fix = _FIX.get(error["type"], "see `slack-pii check-config --schema {kind}`")
        out.append((f"{key}: {message}", fix.format(kind=kind)))
    return out


def describe_shape(value: Any) -> str:
    if value is None:
        return "empty"
    return {str: "a string", list: "a list", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), type(value).__name__)


def yaml_error_where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    reason = getattr(exc, "problem", None) or "syntax error"
    return f"{reason} at line {mark.line + 1}, column {mark.column + 1}" if mark else reason
