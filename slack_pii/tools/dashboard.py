"""The security team's read-only page: what was found, what was done, what nags people, what runs.

Server-rendered HTML with inline CSS and SVG only: no scripts, fonts, images or other requests, so it works
offline and a Content-Security-Policy of `default-src 'none'` holds. It reads the store's shape-only aggregates
(entity types, actions, rule ids, counts, fingerprints' counts) and the scanner slot; it can show nothing more
sensitive than the audit trail holds, which is never a value.

Access (settings.dashboard): `loopback` (default) serves clients on this machine only, and refuses relayed
requests and foreign Host names (DNS rebinding); `token` wants `Authorization: Bearer <dashboard_token>` or
`?token=`; `off` answers 404.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from datetime import UTC, datetime
from html import escape
from urllib.parse import urlencode

from aiohttp import web

from slack_pii.services import SERVICES

ACTIONS = ("block", "redact", "warn", "allow")
COLOURS = {"block": "#c0392b", "redact": "#8e44ad", "warn": "#e08e0b", "allow": "#a3adb8", "forward": "#5d6d7e"}
WINDOWS = {"24h": (24 * 3600, 3600), "7d": (7 * 86400, 86400), "30d": (30 * 86400, 86400)}
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self';"
                               " frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def add_routes(app: web.Application, settings) -> None:
    """Mount /dashboard unless the dashboard is off (then the route does not exist: 404)."""
    if settings.dashboard != "off":
        app.router.add_get("/dashboard", Dashboard(settings).handle)


# --- access ------------------------------------------------------------------------------------------------


def refusal(request: web.Request, settings) -> tuple[int, str] | None:
    """None when the request may see the dashboard, else (status, why)."""
    if settings.dashboard == "token":
        expected = settings.dashboard_token.get_secret_value() if settings.dashboard_token else ""
        if not expected:
            return 403, "dashboard=token but no dashboard_token is configured"
        header = request.headers.get("Authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else request.query.get("token", "")
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            return 401, "a valid dashboard token is required (Authorization: Bearer ... or ?token=...)"
        return None
    if not is_loopback(request.remote):
        return 403, "the dashboard is served to loopback clients only (set dashboard=token for remote access)"
    if "X-Forwarded-For" in request.headers or "Forwarded" in request.headers:
        return 403, "relayed requests are refused in loopback mode (set dashboard=token behind a reverse proxy)"
    host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
    if host.lower() not in LOCAL_HOSTS:
        return 403, "unexpected Host header for a loopback-only dashboard"
    return None


def is_loopback(remote: str | None) -> bool:
    try:
        address = ipaddress.ip_address((remote or "").split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


# --- the page ----------------------------------------------------------------------------------------------


class Dashboard:
    def __init__(self, settings, clock=time.time):
        self.settings = settings
        self.clock = clock

    async def handle(self, request: web.Request) -> web.Response:
        refused = refusal(request, self.settings)
        if refused:
            status, why = refused
            return web.Response(status=status, text=f"dashboard refused: {why}\n", headers=HEADERS)
        services = request.app.get(SERVICES)
        if services is None or not services.store.is_open:
            return web.Response(status=503, text="dashboard: store not open yet\n", headers=HEADERS)
        store = services.store
        window = request.query.get("window", "24h")
        if window not in WINDOWS:
            window = "24h"
        span, bucket = WINDOWS[window]
        now = self.clock()
        since = (int(now // bucket) - span // bucket + 1) * bucket
        data = {
            "activity": await store.activity(since, bucket),
            "actions": await store.action_counts(since),
            "rules": await store.top_rules(since, 10),
            "feedback": await store.feedback_by_rule(),
            "allowed_fps": len(await store.allowed_fingerprints()),
            "allow_hits": await store.allow_hits(since),
            "held": await store.held_pending(),
            "recent": await store.recent_decisions(8),
            "files": await store.file_counts(since),
        }
        status = services.scanner_slot.status()
        token = request.query.get("token") if self.settings.dashboard == "token" else None
        html = render(data, status, window=window, since=since, bucket=bucket, now=now, token=token)
        return web.Response(text=html, content_type="text/html", charset="utf-8", headers=HEADERS)


def render(data: dict, status: dict, *, window: str, since: float, bucket: int, now: float,
           token: str | None = None) -> str:
    files = data.get("files", {})
    actions = {action: n - files.get(action, 0) for action, n in data["actions"].items()}  # messages only
    scanned = sum(actions.values())
    fp_reports = sum(row["reports"] for row in data["feedback"])
    cards = [
        ("Messages scanned", scanned, "#2c3e50"),
        ("Blocked", actions.get("block", 0), COLOURS["block"]),
        ("Redacted", actions.get("redact", 0), COLOURS["redact"]),
        ("Warned", actions.get("warn", 0), COLOURS["warn"]),
        ("Held, pending", len(data["held"]), "#16a085"),
        ("False-positive reports", fp_reports, "#2980b9"),
        ("Files scanned", sum(files.values()), "#2c3e50"),
        ("Files blocked", files.get("block", 0), COLOURS["block"]),
        ("Files redacted", files.get("redact", 0), COLOURS["redact"]),
    ]
    tabs = " ".join(
        f'<a class="tab{" on" if name == window else ""}" href="?{escape(urlencode(_query(name, token)))}">{name}</a>'
        for name in WINDOWS)
    loaded = _when(status.get("loaded_at")) if status.get("loaded_at") else "start-up"
    problems = ""
    if status.get("last_problems"):
        items = "".join(f"<li>{escape(p)}</li>" for p in status["last_problems"])
        problems = (f'<div class="alert"><b>Last config edit was rejected</b>; the version above still runs.'
                    f'<ul>{items}</ul></div>')
    body = f"""
<header>
  <h1>Slack PII proxy <span>security dashboard</span></h1>
  <div class="cfg" id="config-version">config <code>{escape(str(status.get("config_version", "?")))}</code>
    · loaded {escape(loaded)} · {int(status.get("reloads", 0))} reload(s), {int(status.get("rejected", 0))} rejected
    · {int(data["allowed_fps"])} allow-listed fingerprint(s)</div>
</header>
<main>
{problems}
<nav>{tabs}<span class="muted">UTC · since {escape(_when(since))}</span></nav>
<section class="cards">{"".join(_card(*c) for c in cards)}</section>
<section class="panel wide"><h2>Findings over time, by action</h2>{_time_chart(data["activity"], since, bucket, now)}
{_legend()}</section>
<section class="grid">
  <div class="panel"><h2>Findings by entity type</h2>{_entity_chart(data["activity"])}</div>
  <div class="panel"><h2>Top rules</h2>{_rules_table(data["rules"], data["feedback"])}</div>
  <div class="panel"><h2>False-positive reports per rule</h2>{_feedback_table(data["feedback"])}</div>
  <div class="panel"><h2>What exceptions let through</h2>{_allow_table(data["allow_hits"])}</div>
  <div class="panel"><h2>Held messages pending</h2>{_held_table(data["held"], now)}</div>
  <div class="panel"><h2>Recent decisions, explained</h2>{_recent_table(data["recent"])}</div>
</section>
</main>
<footer>Read-only. Shapes only: entity types, rule ids, counts and fingerprints; message text is never stored.</footer>"""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><title>slack-pii · security dashboard</title>
<style>{CSS}</style></head><body>{body}</body></html>"""


def _query(window: str, token: str | None) -> dict:
    return {"window": window, **({"token": token} if token else {})}


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def _card(label: str, value: int, colour: str) -> str:
    return (f'<div class="card" style="border-top-color:{colour}"><div class="num">{value:,}</div>'
            f'<div class="lbl">{escape(label)}</div></div>')


def _legend() -> str:
    return '<div class="legend">' + "".join(
        f'<span><i style="background:{COLOURS[a]}"></i>{a}</span>' for a in ACTIONS) + "</div>"


def _time_chart(activity: list[dict], since: float, bucket: int, now: float) -> str:
    """Stacked bars per hour (24h) or day (7d, 30d): one rect per bucket and action, with a <title> tooltip."""
    count = int((now - since) // bucket) + 1
    totals = [{a: 0 for a in ACTIONS} for _ in range(count)]
    for row in activity:
        index = int((row["bucket"] - since) // bucket)
        if 0 <= index < count and row["action"] in ACTIONS:
            totals[index][row["action"]] += row["findings"]
    peak = max([sum(t.values()) for t in totals] + [1])
    top = _nice(peak)
    width, height, left, bottom, top_pad = 960, 220, 40, 28, 10
    plot_h = height - bottom - top_pad
    slot = (width - left - 10) / count
    bar = max(2.0, slot * 0.72)
    parts = [f'<svg class="chart" id="timeline" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="findings over time">']
    for tick in range(5):
        value = top * tick / 4
        y = top_pad + plot_h - plot_h * tick / 4
        parts.append(f'<line x1="{left}" x2="{width - 6}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">{value:g}</text>')
    label_every = max(1, count // 12)
    for index, stack in enumerate(totals):
        x = left + index * slot + (slot - bar) / 2
        y = top_pad + plot_h
        start = since + index * bucket
        label = _when(start)[11:16] if bucket < 86400 else datetime.fromtimestamp(start, UTC).strftime("%a %d")
        for action in ACTIONS:
            n = stack[action]
            if not n:
                continue
            h = plot_h * n / top
            y -= h
            parts.append(f'<rect class="bar" data-action="{action}" data-bucket="{int(start)}" x="{x:.1f}" '
                         f'y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{COLOURS[action]}">'
                         f'<title>{escape(label)}: {n} {action}</title></rect>')
        if index % label_every == 0:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{height - 8}" class="axis" text-anchor="middle">'
                         f'{escape(label)}</text>')
    if not activity:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" class="empty" text-anchor="middle">'
                     f'no findings in this window</text>')
    parts.append("</svg>")
    return "".join(parts)


def _entity_chart(activity: list[dict]) -> str:
    """One horizontal stacked bar per entity type, longest first."""
    by_entity: dict[str, dict[str, int]] = {}
    for row in activity:
        if row["action"] in ACTIONS and row["entity_type"]:
            counts = by_entity.setdefault(row["entity_type"], {a: 0 for a in ACTIONS})
            counts[row["action"]] += row["findings"]
    if not by_entity:
        return '<p class="muted">No findings in this window.</p>'
    ordered = sorted(by_entity.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))[:12]
    peak = max(sum(c.values()) for _, c in ordered)
    row_h, label_w, width = 24, 170, 460
    bar_w = width - label_w - 50
    parts = [f'<svg class="chart" id="entities" viewBox="0 0 {width} {row_h * len(ordered) + 4}" role="img" '
             f'aria-label="findings by entity type">']
    for index, (entity, counts) in enumerate(ordered):
        y = index * row_h + 2
        parts.append(f'<text x="{label_w - 8}" y="{y + 15}" class="lab" text-anchor="end">{escape(entity)}</text>')
        x = float(label_w)
        for action in ACTIONS:
            n = counts[action]
            if not n:
                continue
            w = bar_w * n / peak
            parts.append(f'<rect class="ebar" data-entity="{escape(entity)}" data-action="{action}" x="{x:.1f}" '
                         f'y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" fill="{COLOURS[action]}">'
                         f'<title>{escape(entity)}: {n} {action}</title></rect>')
            x += w
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 15}" class="axis">{sum(counts.values())}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: list[str], rows: list[list[str]], empty: str, table_id: str) -> str:
    if not rows:
        return f'<p class="muted">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _meter(value: int, peak: int, colour: str) -> str:
    width = 0 if not peak else max(2, round(90 * value / peak))
    return (f'<svg class="meter" width="96" height="10" aria-hidden="true"><rect width="{width}" height="10" '
            f'rx="2" fill="{colour}"/></svg>')


def _rules_table(rules: list[dict], feedback: list[dict]) -> str:
    reports: dict[str, int] = {}
    for row in feedback:
        reports[row["rule_id"]] = reports.get(row["rule_id"], 0) + row["reports"]
    peak = max([r["findings"] for r in rules] + [0])
    rows = []
    for rule in rules:
        strongest = "block" if rule["blocked"] else "redact" if rule["redacted"] else "warn"
        rows.append([f"<code>{escape(rule['rule_id'])}</code>",
                     f"{_meter(rule['findings'], peak, COLOURS[strongest])} {rule['findings']}",
                     str(rule["blocked"] or ""), str(rule["redacted"] or ""), str(rule["warned"] or ""),
                     str(reports.get(rule["rule_id"], "") or "")])
    return _table(["rule", "findings", "blocked", "redacted", "warned", "FP reports"], rows,
                  "No rule fired in this window.", "top-rules")


def _feedback_table(feedback: list[dict]) -> str:
    peak = max([r["reports"] for r in feedback] + [0])
    rows = [[f"<code>{escape(r['rule_id'])}</code>", escape(r["entity_type"]),
             f"{_meter(r['reports'], peak, '#2980b9')} {r['reports']}", str(r["values_reported"]),
             str(r["allowed"] or "")] for r in feedback]
    return (_table(["rule", "entity", "reports", "distinct values", "allow-listed"], rows,
                   "No \u201cnot sensitive\u201d reports yet.", "feedback")
            + '<p class="hint">Review with <code>slack-pii feedback list</code>; allow one with '
              '<code>slack-pii feedback allow FINGERPRINT</code>.</p>')


def _allow_kind(reason: str) -> str:
    """Group policy reasons that carry numbers ("score 0.31 below threshold 0.50") under one label."""
    if "allow-listed fingerprint" in reason:
        return "allow-listed fingerprint"
    if "allow-listed" in reason:
        return "allow-listed value or pattern"
    if "below threshold" in reason:
        return "score below threshold"
    if reason.endswith("-> allow"):
        return "policy action: allow"
    return reason


def _allow_table(hits: list[dict]) -> str:
    grouped: dict[tuple[str, str, str], int] = {}
    for hit in hits:
        key = (hit["rule_id"] or "?", hit["entity_type"] or "?", _allow_kind(hit["reason"] or ""))
        grouped[key] = grouped.get(key, 0) + hit["hits"]
    ordered = sorted(grouped.items(), key=lambda kv: -kv[1])[:10]
    rows = [[f"<code>{escape(rule)}</code>", escape(entity), escape(kind), str(n)]
            for (rule, entity, kind), n in ordered]
    return _table(["rule", "entity", "why let through", "hits"], rows, "Nothing was let through by an exception.",
                  "allow-hits")


def _held_table(held: list[dict], now: float) -> str:
    rows = [[escape(h["channel"] or "?"), _ago(now - h["created"]), f"in {_ago(h['expires'] - now, suffix='')}"]
            for h in held[:10]]
    more = f'<p class="hint">… and {len(held) - 10} more</p>' if len(held) > 10 else ""
    return _table(["channel", "held", "expires"], rows, "No message is waiting for its sender.", "held") + more


def _recent_table(recent: list[dict]) -> str:
    rows = []
    for event in recent:
        explained = [f for f in event["detail"].get("findings", []) if f.get("action") != "allow"]
        why = "<br>".join(
            f"<code>{escape(f['rule'])}</code> {escape(f['pattern'])} · {f['score']:.2f}"
            + (f" · context: {escape(', '.join(f['context_words']))}" if f.get("context_words") else "")
            for f in explained[:3]) or escape(", ".join(event["rules"]))
        rows.append([_when(event["created"])[5:], escape(event["method"] or ""), escape(event["channel"] or ""),
                     f'<span class="pill" style="background:{COLOURS.get(event["action"], "#777")}">'
                     f'{escape(event["action"])}</span>', why])
    return _table(["when", "method", "channel", "action", "why (rule, pattern, score, context)"], rows,
                  "No warned, redacted or blocked message yet.", "recent")


def _ago(seconds: float, suffix: str = " ago") -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s{suffix}"
    if seconds < 7200:
        return f"{seconds // 60} min{suffix}"
    return f"{seconds // 3600} h{suffix}"


def _nice(peak: float) -> float:
    """A round axis maximum >= peak (1, 2, 5 x 10^n)."""
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude >= peak:
                return float(step * magnitude)
        magnitude *= 10


CSS = """
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#1f2933;background:#f3f5f8}header{background:#1f2d3d;color:#fff;padding:14px 28px}
h1{margin:0;font-size:20px;font-weight:600}h1 span{font-weight:400;color:#9fb3c8;margin-left:6px}
.cfg{color:#c9d6e3;font-size:13px;margin-top:4px}.cfg code{color:#fff;background:#34495e;padding:1px 6px;border-radius:4px}
main{padding:18px 28px;max-width:1400px}nav{display:flex;gap:8px;align-items:center;margin-bottom:14px}
.tab{padding:4px 12px;border-radius:14px;background:#e1e7ee;color:#334e68;text-decoration:none;font-weight:500}
.tab.on{background:#334e68;color:#fff}.muted{color:#7b8794}nav .muted{margin-left:auto;font-size:12px}
.cards{display:grid;grid-template-columns:repeat(6,1fr);gap:12px;margin-bottom:14px}
.card{background:#fff;border-radius:8px;border-top:4px solid;padding:12px 14px;box-shadow:0 1px 2px rgba(0,0,0,.06)}
.num{font-size:26px;font-weight:650}.lbl{color:#52606d;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.panel{background:#fff;border-radius:8px;padding:12px 16px;box-shadow:0 1px 2px rgba(0,0,0,.06)}
.panel h2{font-size:14px;margin:0 0 8px;color:#334e68;text-transform:uppercase;letter-spacing:.04em}
.wide{margin-bottom:14px}.grid{display:grid;grid-template-columns:1fr 1fr;gap:14px}
.chart{width:100%;height:auto;display:block}.chart .grid{stroke:#e4e7eb}.axis{font-size:11px;fill:#7b8794}
.lab{font-size:12px;fill:#334e68}.empty{font-size:14px;fill:#9aa5b1}
.legend{display:flex;gap:14px;font-size:12px;color:#52606d;margin-top:4px}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px}
table{width:100%;border-collapse:collapse;font-size:13px}th{text-align:left;color:#7b8794;font-weight:500;
border-bottom:1px solid #e4e7eb;padding:4px 6px}td{padding:5px 6px;border-bottom:1px solid #f0f2f5;vertical-align:top}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}.meter{vertical-align:middle;margin-right:4px}
.pill{color:#fff;border-radius:10px;padding:1px 8px;font-size:12px}.hint{font-size:12px;color:#7b8794;margin:8px 0 0}
.alert{background:#fdecea;border:1px solid #f5b7b1;color:#922b21;border-radius:8px;padding:8px 14px;margin-bottom:14px}
footer{color:#9aa5b1;font-size:12px;padding:4px 28px 18px}
@media (max-width:900px){.cards{grid-template-columns:repeat(3,1fr)}.grid{grid-template-columns:1fr}}
"""
