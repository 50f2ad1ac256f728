"""File uploads through the sidecar with the real slack_sdk clients; asserts are on what the Slack double got."""

from __future__ import annotations

import asyncio
import json
import warnings

import aiohttp
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from slack_pii.services import SERVICES
from slack_pii.webapi.files import FILE_UPLOADS
from tests.factories import CARD, SSN, Clock
from tests.file_factories import PEM_KEY, customers_csv, pdf_with_text
from tests.slack_double import double, proxy, proxy_settings  # noqa: F401 - fixtures

CLEAN = b"# Release notes\n\nVersion 1.2.3 fixes the login page and speeds up search.\n"


def client(proxy) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-uploader", base_url=str(proxy.make_url("/api/")))


def uploads(double) -> list[bytes]:
    return [r.body for r in double.received("upload")]


async def file_events(proxy) -> list[dict]:
    return [e for e in await proxy.app[SERVICES].store.audit_events() if e["name"] == "file_scanned"]


# --- files_upload_v2: getUploadURLExternal -> POST bytes -> completeUploadExternal ---------------------------


async def test_v2_customers_csv_arrives_redacted_with_the_announced_length(proxy, double):
    data = customers_csv(5)
    response = await client(proxy).files_upload_v2(channel="C0123", filename="customers.csv", content=data,
                                                   title="Customers")
    assert response["ok"] and response["file"]["id"] == "F00000001"
    [url_call] = double.received("files.getUploadURLExternal")
    assert url_call.args()["length"] == str(len(data))
    [got] = uploads(double)
    assert len(got) == len(data)  # same-length masking: what Slack was told still holds
    assert SSN.encode() not in got and CARD.encode() not in got and b"[US_SSN]***" in got
    assert got.splitlines()[0] == b"name,email,ssn,card,notes"
    [done] = double.received("files.completeUploadExternal")
    assert done.args()["files"][0]["id"] == "F00000001"
    [event] = await file_events(proxy)
    assert event["action"] == "redact" and event["entities"]["US_SSN"] == 5
    assert event["detail"]["file_id"] == "F00000001" and event["detail"]["file_type"] == "csv"
    assert event["detail"]["size"] == len(data)
    assert SSN not in json.dumps(event) and "customers" not in json.dumps(event)


async def test_v2_pem_private_key_is_blocked_and_slack_never_gets_its_bytes(proxy, double):
    with pytest.raises(SlackRequestError) as raised:
        await client(proxy).files_upload_v2(channel="C0123", filename="id_rsa.pem", content=PEM_KEY)
    message = str(raised.value)
    assert "status: 403" in message and "pii_blocked" in message and "PRIVATE_KEY" in message
    assert "BEGIN RSA" not in message
    assert uploads(double) == [] and double.received("files.completeUploadExternal") == []
    # A client that completes anyway (the file id it was given) is refused the Slack way.
    [url_call] = double.received("files.getUploadURLExternal")
    with pytest.raises(SlackApiError) as completed:
        await client(proxy).files_completeUploadExternal(files=[{"id": "F00000001", "title": "key"}],
                                                         channel_id="C0123")
    body = completed.value.response.data
    assert body["error"] == "pii_blocked" and body["pii"]["entity_types"] == ["PRIVATE_KEY"]
    assert body["pii"]["rule_ids"] == ["private-key"] and "BEGIN" not in json.dumps(body)
    assert double.received("files.completeUploadExternal") == []
    [event] = await file_events(proxy)
    assert event["action"] == "block" and event["status"] == 403 and event["entities"] == {"PRIVATE_KEY": 1}


async def test_v2_clean_file_arrives_byte_identical_with_the_sync_client_too(proxy, double):
    sync = WebClient(token="xoxb-uploader", base_url=str(proxy.make_url("/api/")))
    response = await asyncio.to_thread(sync.files_upload_v2, channel="C0123", filename="notes.md", content=CLEAN)
    assert response["ok"]
    assert uploads(double) == [CLEAN]
    [event] = await file_events(proxy)
    assert event["action"] == "allow" and event["detail"]["file_type"] == "text"


async def test_v2_pdf_with_an_ssn_is_blocked_by_the_type_policy(proxy, double):
    with pytest.raises(SlackRequestError) as raised:
        await client(proxy).files_upload_v2(channel="C0123", filename="statement.pdf",
                                            content=pdf_with_text(f"SSN {SSN}"))
    assert "US_SSN" in str(raised.value) and uploads(double) == []


async def test_label_redaction_gets_a_fresh_upload_url_for_the_new_length(proxy, double, scanner):
    from dataclasses import replace

    policy = replace(scanner.policy, files=replace(scanner.policy.files, redaction="label"))
    proxy.app[SERVICES].scanner_slot.swap(replace(scanner, policy=policy))
    data = f"ssn {SSN}\n".encode()
    response = await client(proxy).files_upload_v2(channel="C0123", filename="a.txt", content=data)
    assert response["ok"]
    first, second = double.received("files.getUploadURLExternal")
    assert first.args()["length"] == str(len(data)) and second.args()["length"] == str(len(b"ssn [US_SSN]\n"))
    assert second.headers["Authorization"] == "Bearer xoxb-uploader"
    [got] = double.received("upload")
    assert got.body == b"ssn [US_SSN]\n" and got.path.endswith("/F00000002")
    [done] = double.received("files.completeUploadExternal")
    assert done.args()["files"][0]["id"] == "F00000002"  # the id Slack has the redacted bytes under


# --- the proxy's upload URLs -------------------------------------------------------------------------------------


async def get_url(proxy, length: int, filename: str = "a.txt") -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.post(proxy.make_url("/api/files.getUploadURLExternal"),
                                data={"filename": filename, "length": str(length)},
                                headers={"Authorization": "Bearer xoxb-uploader"}) as response:
            return await response.json()


async def post_bytes(url: str, data: bytes) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=data) as response:
            return response.status, await response.text()


async def test_upload_url_is_the_proxys_single_use_and_bound_to_its_file_id(proxy, double):
    answer = await get_url(proxy, len(CLEAN))
    url = answer["upload_url"]
    assert url.startswith(str(proxy.make_url("/files/upload/"))) and answer["file_id"] in url
    assert double.base_url not in url
    tampered = url.replace(answer["file_id"], "F99999999")
    assert (await post_bytes(tampered, CLEAN))[0] == 403
    assert await post_bytes(url, CLEAN) == (200, f"OK - {len(CLEAN)}")
    status, text = await post_bytes(url, CLEAN)
    assert status == 403 and text.startswith("invalid_upload_url")
    assert uploads(double) == [CLEAN]


async def test_upload_url_expires(proxy, double):
    clock = Clock()
    proxy.app[FILE_UPLOADS].clock = clock
    answer = await get_url(proxy, len(CLEAN))
    clock.now += proxy.app[SERVICES].settings.file_upload_ttl_seconds + 1
    status, text = await post_bytes(answer["upload_url"], CLEAN)
    assert status == 403 and "SLACK_PII_FILE_UPLOAD_TTL_SECONDS" in text
    assert uploads(double) == []


async def test_upload_url_from_an_untrusted_host_is_not_passed_on(proxy, double):
    double.answer("files.getUploadURLExternal",
                  json_body={"ok": True, "file_id": "F1", "upload_url": "http://evil.example/upload"})
    answer = await get_url(proxy, 10)
    assert answer["ok"] is False and answer["error"] == "upstream_bad_upload_url"


async def test_slack_errors_from_get_upload_url_pass_through(proxy, double):
    double.answer("files.getUploadURLExternal", json_body={"ok": False, "error": "invalid_auth"})
    assert await get_url(proxy, 10) == {"ok": False, "error": "invalid_auth"}


async def test_an_unreadable_file_is_refused_with_its_reason(proxy, double):
    answer = await get_url(proxy, 100, "report.pdf")
    status, text = await post_bytes(answer["upload_url"], b"name,ssn\nJane," + SSN.encode())
    assert status == 403 and text.startswith("file_type_mismatch") and SSN not in text
    assert uploads(double) == []


# --- legacy files.upload -------------------------------------------------------------------------------------------


async def test_legacy_upload_file_part_is_redacted_blocked_or_passed(proxy, double):
    api = client(proxy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        await api.files_upload(channels="C0123", file=customers_csv(2), filename="customers.csv")
        with pytest.raises(SlackApiError) as raised:
            await api.files_upload(channels="C0123", file=PEM_KEY.encode(), filename="id_rsa")
        await api.files_upload(channels="C0123", file=CLEAN, filename="notes.md", initial_comment="notes")
    assert raised.value.response["error"] == "pii_blocked"
    assert raised.value.response["pii"]["entity_types"] == ["PRIVATE_KEY"]
    redacted, clean = double.received("files.upload")
    got = redacted.parts()["file"]
    assert SSN.encode() not in got and len(got) == len(customers_csv(2)) and redacted.args()["channels"] == "C0123"
    assert clean.parts()["file"] == CLEAN
    assert clean.args()["initial_comment"] == "notes"


async def test_legacy_upload_content_argument_is_scanned_too(proxy, double):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        await client(proxy).files_upload(channels="C0123", content=f"ssn {SSN}\n", filename="n.txt")
    [got] = double.received("files.upload")
    assert got.args()["content"] == "ssn [US_SSN]***\n"


async def test_dashboard_counts_files_scanned_blocked_and_redacted(proxy, double):
    api = client(proxy)
    await api.files_upload_v2(channel="C0123", filename="customers.csv", content=customers_csv(2))
    await api.files_upload_v2(channel="C0123", filename="notes.md", content=CLEAN)
    with pytest.raises(SlackRequestError):
        await api.files_upload_v2(channel="C0123", filename="id_rsa", content=PEM_KEY)
    await api.chat_postMessage(channel="C0123", text="hello")
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.make_url("/dashboard")) as response:
            html = await response.text()
    for label, count in (("Files scanned", 3), ("Files blocked", 1), ("Files redacted", 1),
                         ("Messages scanned", 3), ("Blocked", 0)):  # 2 completeUploadExternal + 1 post
        assert f'<div class="num">{count}</div><div class="lbl">{label}</div>' in html
    assert SSN not in html and "BEGIN RSA" not in html


async def test_readyz_reports_whether_images_are_read_with_ocr(proxy):
    import shutil

    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.make_url("/readyz")) as response:
            body = await response.json()
    assert body["files"] == {"ocr": shutil.which("tesseract") is not None,
                             "max_bytes": proxy.app[SERVICES].settings.file_max_bytes}


async def test_file_values_reach_no_log_metric_audit_or_error(proxy, double, caplog):
    caplog.set_level("DEBUG")
    api = client(proxy)
    await api.files_upload_v2(channel="C0123", filename="customers.csv", content=customers_csv(2))
    with pytest.raises(SlackRequestError) as blocked:
        await api.files_upload_v2(channel="C0123", filename="id_rsa.pem", content=PEM_KEY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(SlackApiError) as legacy:
            await api.files_upload(channels="C0123", file=PEM_KEY.encode(), filename="id_rsa")
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.make_url("/metrics")) as response:
            metrics = await response.text()
    audit = json.dumps(await proxy.app[SERVICES].store.audit_events())
    key_line = PEM_KEY.splitlines()[1]
    for text in (caplog.text, metrics, audit, str(blocked.value), json.dumps(legacy.value.response.data)):
        assert SSN not in text and CARD not in text and key_line not in text
    assert "file via files.upload_url: csv" in caplog.text  # the log line says shapes


async def test_a_multipart_upload_to_the_proxy_url_is_scanned_and_forwarded_as_multipart(proxy, double):
    data = customers_csv(1)
    answer = await get_url(proxy, len(data), "customers.csv")
    form = aiohttp.FormData()
    form.add_field("filename", "customers.csv")
    form.add_field("file", data, filename="customers.csv", content_type="text/csv")
    async with aiohttp.ClientSession() as session:
        async with session.post(answer["upload_url"], data=form) as response:
            assert response.status == 200
    [got] = double.received("upload")
    assert got.content_type == "multipart/form-data"
    parts = got.parts()
    assert parts["filename"] == "customers.csv" and len(parts["file"]) == len(data)
    assert SSN.encode() not in parts["file"]


async def test_files_upload_v2_works_against_the_local_sink(tmp_path, scanner):
    import hashlib

    from slack_pii.config import Settings
    from tests.conftest import TEST_KEY
    from tests.slack_double import start_proxy

    server = await start_proxy(Settings(data_dir=tmp_path, secret_key=TEST_KEY, watch_config=False), scanner)
    try:
        data = customers_csv(2)
        api = AsyncWebClient(token="xoxb-local", base_url=str(server.make_url("/api/")))
        response = await api.files_upload_v2(channel="C0123", filename="customers.csv", content=data)
        assert response["ok"]
        [stored] = [m for m in await server.app[SERVICES].store.sink_messages() if m["method"] == "files.upload_url"]
        assert stored["payload"]["size"] == len(data)
        assert stored["payload"]["sha256"] != hashlib.sha256(data).hexdigest()  # what arrived was redacted
    finally:
        await server.close()


async def test_a_redacted_file_stays_redacted_when_the_text_scan_fails_open(tmp_path, scanner, double):
    from slack_pii.config import Settings
    from tests.conftest import TEST_KEY
    from tests.slack_double import start_proxy

    # A budget the call's text scan can never meet (a microsecond of CPU in its worker), the usual one for the file
    # (file scans run on their own thread, under SLACK_PII_FILE_SCAN_TIMEOUT_SECONDS).
    settings = Settings(data_dir=tmp_path, secret_key=TEST_KEY, upstream_url=double.api_url, watch_config=False,
                        scan_cpu_seconds=1e-6, scan_timeout_seconds=0, on_scan_error="forward")
    server = await start_proxy(settings, scanner)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await client(server).files_upload(channels="C0123", file=customers_csv(1), filename="c.csv")
    finally:
        await server.close()
    [got] = double.received("files.upload")
    assert SSN.encode() not in got.parts()["file"]
    assert [e["name"] for e in await _events(tmp_path)] == ["file_scanned", "scan_failed"]


async def _events(tmp_path) -> list[dict]:
    from slack_pii.store.sqlite import Store
    from tests.conftest import TEST_KEY

    store = await Store.open(tmp_path / "slack-pii.sqlite3", bytes.fromhex(TEST_KEY))
    try:
        return await store.audit_events()
    finally:
        await store.close()
