"""`slack-pii export-scan`: a generated export with planted values, its report, a resume after a kill, filters."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slack_pii.tools.history import Filters, run_export_scan
from slack_pii.tools.history_corpus import generate_export, zip_export
from tests.factories import AWS_KEY, CARD, EMAIL, IBAN, PHONE, SLACK_BOT, SSN

# (template, entity, verdict): each planted message holds exactly one value the shipped rules must find.
PLANTS = [
    ("my card is {}", CARD, "CREDIT_CARD", "redact"),
    ("the applicant's ssn is {}", SSN, "US_SSN", "redact"),
    ("email me at {}", EMAIL, "EMAIL_ADDRESS", "warn"),
    ("bot token {} for the deploy", SLACK_BOT, "SLACK_TOKEN", "block"),
    ("aws key {}", AWS_KEY, "AWS_ACCESS_KEY_ID", "block"),
    ("wire it to {}", IBAN, "IBAN_CODE", "redact"),
    ("call me at {}", PHONE, "PHONE_NUMBER", "warn"),
]
RAW_VALUES = [value for _, value, _, _ in PLANTS] + [CARD.replace(" ", ""), IBAN.replace(" ", ""), "078051123"]
CLEAN = ["standup moved to 10:30 tomorrow", "deploy finished, all green", "lunch at noon?",
         "PR #4312 is ready for review", "thanks, merging now", "the build took 1518 seconds",
         "can someone review the design doc today", "Maria said the release slips to Friday"]
COUNT = 2400


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """An export of COUNT messages, one in eight holding a planted value; what was planted where."""
    rng = random.Random(13)
    texts, plants = [], []
    for i in range(COUNT):
        if i % 8 == 3:
            template, value, entity, verdict = PLANTS[(i // 8) % len(PLANTS)]
            texts.append(template.format(value))
            plants.append((i, entity, verdict))
        else:
            texts.append(rng.choice(CLEAN))
    folder = tmp_path_factory.mktemp("export") / "acme"
    manifest = generate_export(folder, COUNT, seed=5, texts=texts)
    expected = {}
    for index, entity, verdict in plants:
        place = manifest["placed"][index]
        expected[(place["channel"], place["ts"])] = (entity, verdict)
    return folder, manifest, expected


def read_findings(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "findings.jsonl").read_text().splitlines()]


def assert_no_raw_values(*folders_or_files: Path) -> None:
    files = []
    for item in folders_or_files:
        files += [p for p in item.rglob("*") if p.is_file()] if item.is_dir() else [item]
    assert files
    for path in files:
        data = path.read_bytes()
        for value in RAW_VALUES:
            assert value.encode() not in data, f"{value!r} found in {path.name}"


def test_report_counts_match_what_was_planted_and_holds_no_raw_value(planted, scanner, tmp_path):
    folder, manifest, expected = planted
    archive = zip_export(folder, tmp_path / "acme.zip")
    out, plan = tmp_path / "report", tmp_path / "remediation.jsonl"
    result = run_export_scan(scanner, archive, out, workers=2, plan_path=plan,
                             workspace_url="https://acme.slack.com")
    totals = result["totals"]
    # every shape the scanner must read was in the export
    assert {"reply", "blocks", "bot", "file", "snippet", "edited", "external", "join"} <= set(manifest["shapes"])
    assert totals["messages"] == manifest["messages"]
    assert totals["scanned"] == COUNT
    assert totals["skipped"] == {"system message (join, leave, rename)": manifest["shapes"]["join"]}
    assert totals["replies"] == manifest["shapes"]["reply"] and totals["edited"] == manifest["shapes"]["edited"]

    lines = read_findings(out)
    found = {(r["channel"], r["ts"]): r for r in lines}
    assert len(found) == len(lines) == len(expected)  # one line per message, none twice
    assert set(found) == set(expected)
    for key, (entity, verdict) in expected.items():
        record = found[key]
        assert {f["entity_type"] for f in record["findings"] if f["action"] != "allow"} == {entity}
        assert record["verdict"] == verdict and "redacted" not in record
        assert record["permalink"].startswith(f"https://acme.slack.com/archives/{key[0]}/p")

    planted_per_entity: dict[str, int] = {}
    for entity, _ in expected.values():
        planted_per_entity[entity] = planted_per_entity.get(entity, 0) + 1
    with (out / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    per_entity = {r["key"]: int(r["messages_with_findings"]) for r in rows if r["dimension"] == "entity"}
    assert per_entity == planted_per_entity
    per_channel = {r["key"]: int(r["messages_with_findings"]) for r in rows if r["dimension"] == "channel"}
    assert sum(per_channel.values()) == len(expected)

    planned = [json.loads(line) for line in plan.read_text().splitlines()]
    assert {(p["channel"], p["ts"]) for p in planned} == {k for k, (_, v) in expected.items() if v != "warn"}
    assert {p["action"] for p in planned if expected[(p["channel"], p["ts"])][1] == "block"} == {"delete"}
    assert any(p["external"] for p in planned)  # the Slack Connect user's messages are marked

    html = (out / "report.html").read_text()
    assert "bot token [SLACK_TOKEN] for the deploy" in html or "aws key [AWS_ACCESS_KEY_ID]" in html  # redacted
    assert 'id="timeline"' in html and "<script" not in html and "http://" not in html.replace(
        "http://www.w3.org", "")  # offline: no external assets
    assert_no_raw_values(out, plan)


def test_filters_limit_what_is_read_and_say_why(planted, scanner, tmp_path):
    folder, manifest, expected = planted
    result = run_export_scan(scanner, folder, tmp_path / "r", filters=Filters(
        since=__import__("datetime").date(2024, 4, 10), channels=("general", "#eng"), exclude_channels=("eng",)))
    lines = read_findings(tmp_path / "r")
    general = json.loads((folder / "channels.json").read_text())[0]["id"]
    assert lines and {r["channel"] for r in lines} == {general}
    assert all(float(r["ts"]) >= 1712707200 for r in lines)  # 2024-04-10
    assert len(lines) == sum(1 for (c, ts) in expected if c == general and float(ts) >= 1712707200)
    skipped = result["run"]["skipped_units"]
    assert skipped["not in --channels"] and skipped["before --since"] and skipped["in --exclude-channels"]


def _cli(*args: str, data_dir: Path, **popen) -> subprocess.Popen:
    env = dict(os.environ, SLACK_PII_DATA_DIR=str(data_dir), SLACK_PII_SECRET_KEY="cd" * 32)
    return subprocess.Popen([sys.executable, "-m", "slack_pii", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def test_resume_after_a_kill_writes_every_message_once(planted, scanner, tmp_path):
    folder, _, expected = planted
    out = tmp_path / "report"
    day_files = len(list(folder.glob("*/*.json")))
    args = ("export-scan", str(folder), "--out", str(out), "--workers", "2", "--no-ner")
    first = _cli(*args, data_dir=tmp_path, start_new_session=True)
    deadline = time.monotonic() + 120
    checkpoint = out / "checkpoint.jsonl"
    while time.monotonic() < deadline and first.poll() is None:
        if checkpoint.exists() and checkpoint.read_bytes().count(b"\n") >= 5:
            break
        time.sleep(0.02)
    os.killpg(first.pid, signal.SIGKILL)  # the CLI and its forked workers, mid-write or not
    first.communicate(timeout=60)
    committed = checkpoint.read_bytes().count(b"\n")
    assert 5 <= committed < day_files, "the kill must land mid-scan"

    resumed = run_export_scan(scanner, folder, out, workers=2)  # in-process: the same code, no second start-up
    assert resumed["run"]["units_resumed"] == committed
    assert resumed["run"]["units_scanned"] == day_files - committed
    keys = [(r["channel"], r["ts"]) for r in read_findings(out)]
    assert len(keys) == len(set(keys))  # nothing twice
    assert set(keys) == set(expected)  # nothing missing
    entries = [json.loads(line) for line in checkpoint.read_text().splitlines()]
    assert len({e["key"] for e in entries}) == len(entries) == day_files
    state = json.loads((out / "state.json").read_text())
    assert len(state["runs"]) == 1 and state["runs"][0]["units_resumed"] == committed  # the killed run never finished
    assert_no_raw_values(out)


def test_a_path_that_is_not_an_export_is_one_line_naming_it(tmp_path, capsys):
    from slack_pii.cli import main

    (tmp_path / "notes.txt").write_text("hello")
    assert main(["export-scan", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "notes.txt: not a Slack workspace export (not a zip file)" in err
    assert not (tmp_path / "r").exists()


def test_a_resumed_scan_keeps_its_source_and_its_plan(tmp_path):
    from slack_pii.tools.history import HistoryError, ReportDir, UnitResult, new_stats

    out, plan = tmp_path / "r", tmp_path / "plan.jsonl"
    report = ReportDir(out, "/exports/acme.zip", plan).open()
    report.commit(UnitResult("general/2024-04-01.json", findings=['{"id": 1}'], plan=['{"ts": "1"}'],
                             stats=new_stats()))
    report.close()  # killed here: no run recorded, but the folder already names its source and plan
    with pytest.raises(HistoryError, match="holds a scan of /exports/acme.zip"):
        ReportDir(out, "/exports/other.zip", plan).open()
    with pytest.raises(HistoryError, match=f"pass --plan {plan} to resume"):
        ReportDir(out, "/exports/acme.zip", None).open()
    resumed = ReportDir(out, "/exports/acme.zip", plan).open()
    assert resumed.done == {"general/2024-04-01.json"}
    resumed.commit(UnitResult("general/2024-04-01.json", findings=['{"id": 1}'], stats=new_stats()))  # no twice
    resumed.close()
    assert (out / "findings.jsonl").read_text() == '{"id": 1}\n' and plan.read_text() == '{"ts": "1"}\n'


def test_names_are_opt_in_and_escaped_and_a_zip_may_hold_one_top_folder(scanner, tmp_path):
    import zipfile

    folder = tmp_path / "small"
    generate_export(folder, 40, seed=2, texts=[f"my card is {CARD}"] * 40, joins=0)
    users = json.loads((folder / "users.json").read_text())
    for user in users:
        user["profile"]["display_name"] = "<script>alert(1)</script>"
    (folder / "users.json").write_text(json.dumps(users))
    archive = tmp_path / "small.zip"
    with zipfile.ZipFile(archive, "w") as zipped:  # some tools zip the folder itself: small/users.json ...
        for path in folder.rglob("*.json"):
            zipped.write(path, f"small/{path.relative_to(folder).as_posix()}")

    run_export_scan(scanner, archive, tmp_path / "ids")
    html = (tmp_path / "ids" / "report.html").read_text()
    assert "U000000001A" in html and "alert(1)" not in html  # ids by default

    result = run_export_scan(scanner, archive, tmp_path / "names", names=True)
    assert result["totals"]["scanned"] == 40
    html = (tmp_path / "names" / "report.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
