"""The one place that builds the analyzer, and turns Presidio results into our own `Finding`s.

Start-up: load the spaCy pipeline through `models/` (installed package only, NER component only), compile
the YAML rules from `recognizers/`, and register them with Presidio's phone recognizer and spaCy NER in a
single AnalyzerEngine. Per message: rules run behind one multi-pattern prefilter; phone matching runs only
when there are enough digits; NER runs only on prose that could hold a name (code, URLs, mentions and
machine text are skipped) and is batched through `nlp.pipe` for many messages.
"""

from __future__ import annotations

import logging
import re

import phonenumbers
from collections.abc import Sequence
from pathlib import Path

from presidio_analyzer import AnalysisExplanation, AnalyzerEngine, EntityRecognizer, RecognizerRegistry, RecognizerResult
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import PhoneRecognizer, SpacyRecognizer

from slack_pii.detect.nlp import ModelConfig, load_model_config, load_pipeline
from slack_pii.errors import ConfigError, ConfigProblem, DetectionError
from slack_pii.detect.findings import Finding, ScanResult, Suppressed
from slack_pii.detect.slack_text import Segment, extract_segments
from slack_pii.detect.rules import RuleSet, context_score, load_rules
from slack_pii.detect.names import name_spans
from slack_pii.detect.structured import FIELD_KINDS, FIELD_SCORE, field_findings

log = logging.getLogger(__name__)
# NOTE: Presidio logs "Fetching all recognizers..." at INFO on every call, and its decision trace can quote text.
logging.getLogger("presidio-analyzer").setLevel(logging.WARNING)

LANGUAGE = "en"
NER_ENTITIES = ("PERSON", "LOCATION")
BUILTIN_ENTITIES = ("PHONE_NUMBER",) + NER_ENTITIES
PHONE_RULE = "phone-number"
NER_RULE = {"PERSON": "ner-person", "LOCATION": "ner-location"}
# NOTE: Presidio drops zero-score results; allow-list hits ride along with a token score and an `allowed_by` tag.
ALLOW_HIT_SCORE = 1e-6
CATEGORY_OF_BUILTIN = {"PHONE_NUMBER": "contact", "PERSON": "person", "LOCATION": "location"}


class _NoContextEnhancer(ContextAwareEnhancer):
    """Context is applied by our recognizers themselves (a character window, no lemmas needed)."""

    def __init__(self) -> None:
        super().__init__(context_similarity_factor=0, min_score_with_context_similarity=0, context_prefix_count=0,
                         context_suffix_count=0)

    def enhance_using_context(self, text, raw_results, nlp_artifacts, recognizers, context=None):
        return raw_results


class RuleSetRecognizer(EntityRecognizer):
    """All YAML rules as one Presidio recognizer, so one prefilter pass decides which regexes run."""

    def __init__(self, ruleset: RuleSet):
        self.ruleset = ruleset
        super().__init__(supported_entities=ruleset.entities, name="slack-pii-rules", supported_language=LANGUAGE)

    def load(self) -> None:
        pass

    def analyze(self, text, entities, nlp_artifacts=None):
        matches, allowed = self.ruleset.find(text)
        results = [
            RecognizerResult(
                m.rule.entity, m.start, m.end, m.score,
                analysis_explanation=AnalysisExplanation(self.name, m.score, pattern_name=m.pattern),
                recognition_metadata={"rule": m.rule.id, "category": m.rule.category, "pattern": m.pattern,
                                      "context_words": m.context_words,
                                      RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                      RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id},
            )
            for m in matches
        ]
        results += [
            RecognizerResult(
                a.rule.entity, a.start, a.end, ALLOW_HIT_SCORE,
                recognition_metadata={"rule": a.rule.id, "allowed_by": a.reason,
                                      RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                      RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id},
            )
            for a in allowed
        ]
        return results


class FieldRecognizer(EntityRecognizer):
    """Values under a key or column header that names them (structured.py): `ssn`, `dob`, `passport_no` ..."""

    def __init__(self, ruleset: RuleSet):
        self.placeholders = ruleset.placeholders
        super().__init__(supported_entities=sorted({k.entity for k in FIELD_KINDS}), name="slack-pii-fields",
                         supported_language=LANGUAGE)

    def load(self) -> None:
        pass

    def analyze(self, text, entities, nlp_artifacts=None):
        return [
            RecognizerResult(
                f.entity, f.start, f.end, FIELD_SCORE,
                analysis_explanation=AnalysisExplanation(self.name, FIELD_SCORE, pattern_name=f"key {f.key}"),
                recognition_metadata={"rule": f.rule, "category": f.category, "pattern": "value under its key",
                                      "context_words": (f.key,), RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                      RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id})
            for f in field_findings(text, self.placeholders.is_placeholder)
        ] + [
            RecognizerResult(
                "PERSON", n.start, n.end, FIELD_SCORE,
                analysis_explanation=AnalysisExplanation(self.name, FIELD_SCORE, pattern_name=n.rule),
                recognition_metadata={"rule": n.rule, "category": "person", "pattern": n.rule, "context_words": (),
                                      RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                      RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id})
            for n in name_spans(text)
        ]


# A phone-number candidate: 7-15 digits with the separators people type, not inside a longer token (ids, paths,
# versions, timestamps glued to letters). phonenumbers then validates each candidate alone, so its cost no longer
# grows with the length of a pasted log.
_PHONE_CANDIDATE = re.compile(r"(?<![\w.\-/#])(?:\+|00)?\(?\d[\d \t().\-/]{5,22}\d(?![\w.\-/:])")
INTERNATIONAL_PHONE_SCORE = 0.6
_PHONE_CONTEXT = re.compile(r"(?i)\b(phone|tel|telephone|cell|mobile|call|text me|whatsapp|fax|number|reach|contact|dial|"
                            r"ping me|emergency|landlord|téléphone|telefon|telefone|teléfono|telefono|celular|handy|ruf|"
                            r"sđt|điện thoại|numer|número|numero|numéro|zadzwo|携帯|電話|手机|전화|휴대폰|alt)")
# Regions tried, in order, for a number written without +CC (the first that validates wins).
PHONE_REGIONS = ("US", "GB", "DE", "FR", "IL", "IN", "CA", "BR", "AU", "ES", "IT", "NL", "PL", "NG", "VN", "KR", "JP",
                 "MX", "TR", "ZA", "KE", "IE", "PT", "SE", "CN", "AE")
# Shapes phonenumbers would reject after real work: dotted quads (IPs, versions) and calendar dates.
_NOT_A_PHONE = re.compile(r"1[5-9]\d{8}(?:\d{3})?|\d{3}-\d{2}-\d{4}|\d{1,3}(?:\.\d{1,3}){3}|\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4}|\d{1,2}\.\d{1,2}\.\d{4}")


class GatedPhoneRecognizer(PhoneRecognizer):
    """Presidio's phonenumbers-based recognizer, run on phone-shaped candidates only (first region that matches)."""

    def analyze(self, text, entities, nlp_artifacts=None):
        results = []
        for candidate in _PHONE_CANDIDATE.finditer(text):
            window = candidate.group()
            digits = sum(ch.isdigit() for ch in window)
            if not 7 <= digits <= 15 or _NOT_A_PHONE.fullmatch(window.strip("()")):
                continue
            international = window.startswith(("+", "00"))
            valid = True
            # NOTE: without a phone word nearby a national number stays below the threshold whatever its region, so
            # only Presidio's default regions are tried (logs are full of digit runs; each region costs a parse).
            near = text[max(0, candidate.start() - 64):candidate.end() + 32]
            regions = PHONE_REGIONS if _PHONE_CONTEXT.search(near) else self.supported_regions
            for region in ("ZZ",) if international else regions:
                found = list(phonenumbers.PhoneNumberMatcher(window, region, leniency=self.leniency))
                if found:
                    break
            if not found and international:
                # NOTE: a +CC number phonenumbers cannot validate (new ranges, typos) is still possible: it needs a
                # context word to be acted on.
                found, valid = list(phonenumbers.PhoneNumberMatcher(window, "ZZ", leniency=phonenumbers.Leniency.POSSIBLE)), False
            for match in found:
                start, end = candidate.start() + match.start, candidate.start() + match.end
                # NOTE: a "+CC ..." number that phonenumbers validates is written as a phone on purpose.
                base = INTERNATIONAL_PHONE_SCORE if text[start] == "+" and valid else self.SCORE
                score, words = context_score(text, start, end, base, _PHONE_CONTEXT)
                results.append(RecognizerResult(
                    self.supported_entities[0], start, end, score,
                    analysis_explanation=AnalysisExplanation(self.name, self.SCORE, pattern_name="phonenumbers match"),
                    recognition_metadata={"rule": PHONE_RULE, "category": "contact", "pattern": "phonenumbers match",
                                          "context_words": words, RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                          RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id}))
        return results


# Words that start sentences in ordinary chat; a capitalised word that is not one of these may be a name.
_COMMON = frozenset("""
a about after again all also an and any anyone anything are as at back be because before being below best
better both but by can cannot could did do does doing done down during each either else even ever every
everyone few first for from get gets getting go going good got great had has have having he hello help here
hey hi his how however i i'd i'll i'm i've if in into is it it's its just last let let's like lol looks made
make many may maybe me might more morning most much must my need new next no nope not nothing now of off
ok okay on once one only or other our out over per please pr quick quickly re really right same see seems
she should since so some someone something sorry still such sure thanks thank that that's the their them
then there these they thing things this those though thx to today tomorrow too try two under until up
update updated updates us very was we we'll we're well were what when where which while who why will with
without would yeah yes yesterday yet you your also fyi btw heads note notes version release released build
builds deploy deployed deploying deployment merged merge merging fixed fix fixes test tests testing check
checking looking working works error errors warning warnings info debug failed fails success successful
done finished started starting running ran alert alerts issue issues ticket tickets bug bugs feature
features status summary total daily weekly monthly reminder reminders meeting meetings call standup
sprint review reviewed approved approve lgtm ack ping pinging reply question questions answer agenda
action items item todo todos welcome congrats congratulations happy good morning afternoon evening night
monday tuesday wednesday thursday friday saturday sunday january february march april may june july
august september october november december
""".split())
_CAPITALISED = re.compile(r"\b[A-Z][a-z]{1,30}\b")


def could_hold_name(text: str) -> bool:
    """Cheap gate before NER: a capitalised word that is not a common English word (names, places)."""
    return any(m.group().lower() not in _COMMON for m in _CAPITALISED.finditer(text))


_NAME_TOKEN = re.compile(r"[^\W\d_](?:[^\W\d_]|['’.\-])*")


def looks_like_a_name(value: str) -> bool:
    """NER output that can be a person or a place: capitalised words of letters (no digits, ids or paths), and
    not an ALL-CAPS code like OPS-9683 or NASA."""
    words = value.split()
    if not words or any(not _NAME_TOKEN.fullmatch(w.strip(",")) for w in words):
        return False
    return any(w[0].isupper() for w in words) and not all(w.isupper() and len(w) > 1 for w in words)


# Texts that reach the parts the rule examples may not: phonenumbers (national and +CC), and a spaCy pass.
WARM_UP_TEXTS = ("call me on 415-555-2671 or +44 20 7946 0958", "Jane Doe flew to Paris with Bob Smith on Monday")
_TITLES = frozenset("dr dr. mr mr. mrs mrs. ms ms. prof prof. sig sig. sig.ra herr frau sr sr. sra sra. mme mme. "
                    "m. pan pani dra dra.".split())
# Words NER glues to a name: greetings and thanks in several languages, articles, street and form words.
_NOT_NAME_LEAD = frozenset("""
thanks thank thx ty hi hey hello dear cc danke dzięki dzieki merci gracias grazie obrigado obrigada bedankt tack
hallo hola ciao salut bonjour cześć die der das den dem des el la le les los las il lo o a de du da van von
calle rua via rue ul. avenida viale corso piazza quận phố ngõ müşteri paciente paziente transferencia bonifico
""".split())


_SURNAME_AFTER = re.compile(r"[ \t]([A-Z][a-z'’\-]{1,30}(?:-[A-Z][a-z]{1,30})?)\b")
_TITLE_BEFORE = re.compile(r"(?i)\b(?:dr|mr|mrs|ms|prof|sig|herr|frau|sr|sra|mme)\.?[ \t]+$")


def person_span(value: str) -> tuple[int, int] | None:
    """The part of an NER PERSON span that is a full name per LABELLING.md (given + family name, or title + family
    name), with greetings and articles NER glued on removed; None for a lone given name or a non-name."""
    words = [(m.start(), m.end(), m.group()) for m in re.finditer(r"\S+", value)]
    while words and (words[0][2].lower().strip(",:!") in _NOT_NAME_LEAD or words[0][2][0].islower()):
        words.pop(0)
    if words and words[-1][2].endswith(("'s", "’s")):
        words[-1] = (words[-1][0], words[-1][1] - 2, words[-1][2][:-2])
    if len(words) < 2 or not all(_NAME_TOKEN.fullmatch(w[2].strip(",")) for w in words):
        return None
    if len(words) == 2 and words[0][2].lower() in _TITLES:
        return words[0][0], words[-1][1]
    if sum(w[2].lower() not in _TITLES for w in words) < 2:
        return None
    return words[0][0], words[-1][1]


# Words before a city that make it where a specific person lives or moves to (several languages).
_MOVES_TO = re.compile(r"(?i)(?:mov(?:e|ed|es|ing)|relocat\w*|liv(?:e|es|ed|ing)|lebt|wohnt|zieht|umzug|resid\w*|"
                       r"mudar|muda|mudou|trasferisce|trasferit\w*|przeprowadza\w*|chuyển|déménag\w*|verhuis\w*|"
                       r"taşın\w*|se muda|vive|vit|habite|sống|home(?:town)?|address|adresse|ship(?:ping)?|deliver\w*)"
                       r"\W+(?:\w+\W+){0,4}$")


def country_recognizers(names: Sequence[str], source: str = "policy") -> list[EntityRecognizer]:
    """Presidio's predefined country recognizers, by class name (`UkNinoRecognizer`, `EsNifRecognizer` ...), run on
    English-language chat; a name Presidio does not ship stops start-up with the fix."""
    found, problems = collect_country_recognizers(names, source)
    if problems:
        raise ConfigError(problems)
    return found


def collect_country_recognizers(names: Sequence[str], source: str = "policy") -> tuple[list[EntityRecognizer],
                                                                                      list[ConfigProblem]]:
    """Like country_recognizers, but return the problems (for `check-config`)."""
    from presidio_analyzer import predefined_recognizers

    found, problems = [], []
    for name in names:
        cls = getattr(predefined_recognizers, str(name), None)
        if not (isinstance(cls, type) and issubclass(cls, EntityRecognizer)) or name in _NOT_COUNTRY_RECOGNIZERS:
            problems.append(ConfigProblem(source, None, f"country_recognizers: unknown Presidio recognizer {name!r}",
                                          "use a class name from presidio_analyzer.predefined_recognizers, "
                                          "e.g. UkNinoRecognizer"))
            continue
        found.append(cls(supported_language=LANGUAGE))
    return found, problems


# Recognizers that are not country identifiers (ours cover these kinds, or they need models or services).
_NOT_COUNTRY_RECOGNIZERS = frozenset({
    "SpacyRecognizer", "StanzaRecognizer", "TransformersRecognizer", "GLiNERRecognizer", "HuggingFaceNerRecognizer",
    "AzureAILanguageRecognizer", "AzureHealthDeidRecognizer", "AzureOpenAILangExtractRecognizer",
    "BasicLangExtractRecognizer", "LangExtractRecognizer", "MedicalNERRecognizer", "PhoneRecognizer",
    "EmailRecognizer", "CreditCardRecognizer", "IbanRecognizer", "IpRecognizer", "UrlRecognizer", "DateRecognizer",
    "UsSsnRecognizer", "UsBankRecognizer", "UsPassportRecognizer", "UsLicenseRecognizer", "UsItinRecognizer",
    "AbaRoutingRecognizer",
})


def country_recognizer_names(policy_file: Path | None) -> list[str]:
    """The `country_recognizers:` list of a policy file (read before the engine is built: it decides what the
    analyzer holds); the policy loader validates the rest of the file."""
    import yaml

    from slack_pii.detect.policy import DEFAULT_POLICY_FILE

    path = Path(policy_file or DEFAULT_POLICY_FILE)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return []  # the policy loader reports the file's problem with its own message
    names = raw.get("country_recognizers") or [] if isinstance(raw, dict) else []
    return [str(n) for n in names] if isinstance(names, list) else []


class Engine:
    """Built once at start-up; `scan` and `scan_batch` are the only per-message entry points."""

    def __init__(self, ruleset: RuleSet, analyzer: AnalyzerEngine, nlp_engine: SpacyNlpEngine | None,
                 model_config: ModelConfig, max_ner_chars: int = 20_000):
        self.ruleset = ruleset
        self.analyzer = analyzer
        self.nlp_engine = nlp_engine
        self.model_config = model_config
        self.max_ner_chars = max_ner_chars
        self.country_entities: frozenset[str] = frozenset()  # entities of Presidio country recognizers enabled
        # What NER-skipped segments get instead of spaCy output: built once, read-only for every recognizer.
        empty_doc = nlp_engine.nlp[LANGUAGE].make_doc("") if nlp_engine else None
        self._no_ner = NlpArtifacts([], empty_doc, [], [], nlp_engine, LANGUAGE, [])

    @property
    def version(self) -> str:
        return self.ruleset.version

    @property
    def ner_enabled(self) -> bool:
        return self.nlp_engine is not None

    @classmethod
    def build(cls, rules_dir: Path | None = None, *, spacy_model: str | None = None, ner: bool = True,
              ruleset: RuleSet | None = None, country: Sequence[str] = ()) -> Engine:
        """Compile rules and load the model; raises ConfigError / ModelNotInstalled with the fix in the message."""
        ruleset = ruleset or load_rules(rules_dir)
        model_config = load_model_config(spacy_model=spacy_model)
        nlp_engine = None
        registry = RecognizerRegistry(supported_languages=[LANGUAGE])
        registry.add_recognizer(RuleSetRecognizer(ruleset))
        registry.add_recognizer(FieldRecognizer(ruleset))
        extra = country_recognizers(country)
        for recognizer in extra:
            registry.add_recognizer(recognizer)
        registry.add_recognizer(GatedPhoneRecognizer(supported_language=LANGUAGE, name="phone-number"))
        if ner:
            nlp = load_pipeline(model_config)
            nlp_engine = SpacyNlpEngine(
                models=[{"lang_code": LANGUAGE, "model_name": model_config.spacy_model}],
                ner_model_configuration=NerModelConfiguration(
                    model_to_presidio_entity_mapping=dict(model_config.entity_mapping),
                    labels_to_ignore=[],
                    low_score_entity_names=[],
                    default_score=model_config.ner_score,
                ),
            )
            nlp_engine.nlp = {LANGUAGE: nlp}  # loaded by us: SpacyNlpEngine.load() would try to download
            registry.add_recognizer(SpacyRecognizer(supported_language=LANGUAGE,
                                                    supported_entities=list(NER_ENTITIES), name="spacy-ner"))
        analyzer = AnalyzerEngine(registry=registry, nlp_engine=nlp_engine or _NullNlpEngine(),
                                  supported_languages=[LANGUAGE], context_aware_enhancer=_NoContextEnhancer())
        engine = cls(ruleset, analyzer, nlp_engine, model_config)
        engine.country_entities = frozenset(e for r in extra for e in r.supported_entities)
        engine.warm_up()
        return engine

    def warm_up(self) -> None:
        """Pay every first-use cost at build time, never in a message's time limits: tldextract's suffix list
        (e-mail validator), phonenumbers' per-region metadata, the spaCy pipeline, every validator a rule uses.

        NOTE: these are lazy and large; the first e-mail alone allocated enough to set off a full GC of ~0.2 s,
        which used to land inside the regex time limit of an ordinary message.
        """
        for region in phonenumbers.SUPPORTED_REGIONS:
            phonenumbers.PhoneMetadata.metadata_for_region(region)
        for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
            phonenumbers.PhoneMetadata.metadata_for_nongeo_region(code)
        texts = [example for rule in self.ruleset.rules for example in rule.examples_match] + list(WARM_UP_TEXTS)
        self.scan_batch([extract_segments(text) for text in texts])

    # --- per message -------------------------------------------------------------------------------------

    def scan(self, segments: Sequence[Segment]) -> ScanResult:
        return self.scan_batch([segments])[0]

    def scan_batch(self, messages: Sequence[Sequence[Segment]]) -> list[ScanResult]:
        """Scan many messages; NER for all of them goes through one `nlp.pipe` call."""
        try:
            flat = [(i, segment) for i, segments in enumerate(messages) for segment in segments]
            artifacts = self._ner_artifacts([segment for _, segment in flat])
            results = [ScanResult([], []) for _ in messages]
            for (index, segment), artifact in zip(flat, artifacts):
                self._scan_segment(segment, artifact, results[index])
            return results
        except (TimeoutError, RecursionError, MemoryError, ValueError, TypeError, KeyError, IndexError, re.error) as exc:
            # NOTE: the message names the failure type only; the exception text may quote the input.
            raise DetectionError(f"detection failed: {type(exc).__name__}") from None

    def _ner_artifacts(self, segments: Sequence[Segment]) -> list[NlpArtifacts | None]:
        artifacts: list[NlpArtifacts | None] = [None] * len(segments)
        if self.nlp_engine is None:
            return artifacts
        wanted = []
        for index, segment in enumerate(segments):
            if segment.kind == "url":
                continue
            text = segment.scan.ner_text()
            if len(text) <= self.max_ner_chars and could_hold_name(text):
                wanted.append((index, text))
        if wanted:
            nlp = self.nlp_engine.nlp[LANGUAGE]
            docs = nlp.pipe((text for _, text in wanted), batch_size=64)
            for (index, _), doc in zip(wanted, docs):
                artifacts[index] = self.nlp_engine._doc_to_nlp_artifact(doc, LANGUAGE)
        return artifacts

    def _scan_segment(self, segment: Segment, artifact: NlpArtifacts | None, into: ScanResult) -> None:
        scan = segment.scan
        raw = self.analyzer.analyze(scan.text, LANGUAGE, nlp_artifacts=artifact or self._no_ner, score_threshold=0.0)
        kept: list[Finding] = []
        for result in raw:
            meta = result.recognition_metadata or {}
            start, end = scan.to_original(result.start, result.end)
            start, end = _clip_protected(start, end, scan.protected)
            if end <= start:
                continue
            value = segment.text[start:end]
            if "allowed_by" in meta:
                into.suppressed.append(Suppressed(result.entity_type, meta["rule"], meta["allowed_by"],
                                                  segment.path, value))
                continue
            entity = result.entity_type
            if entity in NER_ENTITIES and "rule" not in meta:
                if not looks_like_a_name(value) and not (entity == "PERSON" and value.isupper()):
                    continue
                if entity == "LOCATION" and not _MOVES_TO.search(scan.text, max(0, result.start - 48), result.start):
                    continue  # a place is PII here only as where someone lives or moves (LABELLING.md)
                if entity == "PERSON":
                    title = _TITLE_BEFORE.search(segment.text, max(0, start - 8), start)
                    if title and " " not in value.strip():  # NER often leaves the title out: `Mr. [Mayers]`
                        start, value = title.start(), segment.text[title.start():end]
                    elif " " not in value.strip() and (surname := _SURNAME_AFTER.match(segment.text, end)):
                        # NER often stops after the given name: `call [Jane] Doe`; a capitalised word right after
                        # it that is no common word completes the name
                        if surname.group(1).lower() not in _COMMON:
                            end = surname.end()
                            value = segment.text[start:end]
                    span = person_span(value)
                    if span is None:
                        continue
                    start, end = start + span[0], start + span[1]
                    value = segment.text[start:end]
            kept.append(Finding(
                entity_type=entity, start=start, end=end, score=float(result.score),
                rule=meta.get("rule") or NER_RULE.get(entity, entity.lower()),
                pattern=meta.get("pattern") or "spaCy NER",
                category=meta.get("category") or CATEGORY_OF_BUILTIN.get(entity)
                or ("government_id" if entity in self.country_entities else "personal"),
                path=segment.path, context_words=tuple(meta.get("context_words") or ()), value=value,
            ))
        into.findings.extend(resolve_overlaps(kept))


def _clip_protected(start: int, end: int, protected: list[tuple[int, int]]) -> tuple[int, int]:
    """Never let a finding cover part of a mention, channel, special or emoji token."""
    for p_start, p_end in protected:
        if p_start < end and start < p_end:
            if start >= p_start:
                start = p_end
            elif end <= p_end:
                end = p_start
            else:  # token strictly inside: keep the longer side
                start, end = (start, p_start) if p_start - start >= end - p_end else (p_end, end)
    return start, end


# Which of two overlapping findings speaks for the span: the more sensitive kind first, so an e-mail address
# inside `postgres://me@x.com:pw@host` can never hide the credential around it.
SENSITIVITY = {"credential": 0, "financial": 1, "government_id": 2, "personal": 3, "contact": 4, "network": 5,
               "location": 6, "person": 7}


def resolve_overlaps(findings: list[Finding]) -> list[Finding]:
    """Keep one finding per overlapping cluster: confident before weak guesses (< 0.5), then the most sensitive
    category, then the highest score, then the longest span."""
    # NOTE: NER is a guess about any span; a rule or a key that names the value is evidence, so it speaks first.
    ordered = sorted(findings, key=lambda f: (f.score < 0.5, f.rule in NER_RULE.values(),
                                              SENSITIVITY.get(f.category, 8), -f.score, -(f.end - f.start), f.start))
    kept: list[Finding] = []
    for finding in ordered:
        if all(finding.end <= other.start or other.end <= finding.start for other in kept):
            kept.append(finding)
    return sorted(kept, key=lambda f: f.start)


class _NullNlpEngine(SpacyNlpEngine):
    """Stands in when NER is switched off; AnalyzerEngine insists on an NLP engine."""

    def __init__(self) -> None:
        super().__init__(models=[{"lang_code": LANGUAGE, "model_name": "none"}])
        self.nlp = {LANGUAGE: None}

    def is_loaded(self) -> bool:
        return True
