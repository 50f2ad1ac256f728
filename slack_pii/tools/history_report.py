"""The report folder's summary.csv and offline report.html, from the counts a history scan committed.

Shapes only: conversation ids/#names, entity types, rule ids, poster ids (names only when opted in), days and
counts. The riskiest messages are the excerpts `history.excerpt` made, with every finding replaced. The HTML is
one file with inline CSS and SVG (the dashboard's look), rendered by Jinja2 with autoescape on.
"""

from __future__ import annotations

import csv
from pathlib import Path

from jinja2 import Environment

from slack_pii.tools.dashboard import CSS, _nice as nice_axis

COLOURS = {"block": "#c0392b", "redact": "#8e44ad", "warn": "#d68910"}


def label_of(state: dict, conversation_id: str) -> str:
    return (state.get("conversations") or {}).get(conversation_id, {}).get("label") or conversation_id


def poster_label(state: dict, poster: str) -> str:
    return (state.get("posters") or {}).get(poster) or poster


def summary_rows(totals: dict, state: dict) -> list[dict]:
    """summary.csv: one row per (dimension, key) with messages scanned/with findings and findings."""
    rows = [{"dimension": "total", "key": name, "messages": totals[name], "messages_with_findings": "",
             "findings": ""} for name in ("messages", "scanned", "with_findings", "findings", "edited", "replies",
                                          "bots", "files")]
    for reason, n in sorted(totals["skipped"].items()):
        rows.append({"dimension": "skipped", "key": reason, "messages": n, "messages_with_findings": "",
                     "findings": ""})
    for verdict, n in sorted(totals["verdicts"].items()):
        rows.append({"dimension": "verdict", "key": verdict, "messages": "", "messages_with_findings": n,
                     "findings": ""})
    for cid, (scanned, hit, findings) in sorted(totals["channels"].items()):
        rows.append({"dimension": "channel", "key": label_of(state, cid), "messages": scanned,
                     "messages_with_findings": hit, "findings": findings})
    for dimension, table in (("entity", "entities"), ("rule", "rules")):
        for name, (hit, findings) in sorted(totals[table].items()):
            rows.append({"dimension": dimension, "key": name, "messages": "", "messages_with_findings": hit,
                         "findings": findings})
    for who, (hit, findings) in sorted(totals["posters"].items()):
        rows.append({"dimension": "poster", "key": poster_label(state, who), "messages": "",
                     "messages_with_findings": hit, "findings": findings})
    for day, (scanned, hit) in sorted(totals["days"].items()):
        rows.append({"dimension": "day", "key": day, "messages": scanned, "messages_with_findings": hit,
                     "findings": ""})
    return rows


def write_report(out: Path, report) -> None:
    totals, state = report.totals, report.state
    with (out / "summary.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=("dimension", "key", "messages", "messages_with_findings",
                                                    "findings"))
        writer.writeheader()
        writer.writerows(summary_rows(totals, state))
    (out / "report.html").write_text(render_html(totals, state, report.top), encoding="utf-8")


def _ranked(table: dict, limit: int = 20) -> list[tuple[str, list[int]]]:
    return sorted(table.items(), key=lambda kv: (-kv[1][-1], kv[0]))[:limit]


def time_chart(days: dict) -> dict:
    """Bars per day (per month when the scan spans more than 120 days): messages with findings."""
    buckets: dict[str, list[int]] = {}
    monthly = len(days) > 120
    for day, (scanned, hit) in days.items():
        key = day[:7] if monthly and day != "unknown" else day
        row = buckets.setdefault(key, [0, 0])
        row[0] += scanned
        row[1] += hit
    ordered = sorted(buckets.items())
    top = nice_axis(max([hit for _, (_, hit) in ordered] + [1]))
    width, height, left, bottom, pad = 960, 200, 40, 26, 10
    plot = height - bottom - pad
    slot = (width - left - 10) / max(len(ordered), 1)
    bar = max(1.5, slot * 0.75)
    every = max(1, len(ordered) // 12)
    bars = []
    for index, (key, (scanned, hit)) in enumerate(ordered):
        h = plot * hit / top
        x = left + index * slot + (slot - bar) / 2
        bars.append({"x": round(x, 1), "y": round(pad + plot - h, 1), "w": round(bar, 1), "h": round(h, 1),
                     "key": key, "hit": hit, "scanned": scanned, "label": index % every == 0})
    ticks = [{"y": round(pad + plot - plot * i / 4, 1), "value": f"{top * i / 4:g}"} for i in range(5)]
    return {"width": width, "height": height, "left": left, "bars": bars, "ticks": ticks, "monthly": monthly}


def render_html(totals: dict, state: dict, top: list[dict]) -> str:
    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(TEMPLATE)
    channels = [(label_of(state, cid), row) for cid, row in _ranked(totals["channels"])]
    channels = [c for c in channels if c[1][1]]
    entities = _ranked(totals["entities"])
    peak = max([row[0] for _, row in entities] + [1])
    return template.render(
        css=CSS, totals=totals, state=state, runs=state.get("runs", []), channels=channels, entities=entities,
        peak=peak, rules=_ranked(totals["rules"], 15),
        posters=[(poster_label(state, who), row) for who, row in _ranked(totals["posters"], 15)],
        names=bool(state.get("posters")), chart=time_chart(totals["days"]), colours=COLOURS,
        top=[{**t, "where": label_of(state, t["channel"]), "who": poster_label(state, t["user"])} for t in top],
        seconds=sum(r.get("seconds", 0) for r in state.get("runs", [])),
        skipped_units=(state.get("runs") or [{}])[-1].get("skipped_units", {}))


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>slack-pii history scan</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{{ css }}
.bar{fill:#8e44ad}.excerpt{white-space:pre-wrap;word-break:break-word}</style></head>
<body><header><h1>History scan<span>{{ state.source }}</span></h1>
<div class="cfg">{{ runs|length }} run(s), {{ "%.1f"|format(seconds) }} s in total{% if runs %}; last started
{{ runs[-1].started }} with {{ runs[-1].workers }} worker(s), config <code>{{ runs[-1].config_version }}</code>{% endif %}</div>
</header><main>
<div class="cards">
<div class="card" style="border-color:#334e68"><div class="num" id="scanned">{{ totals.scanned }}</div><div class="lbl">messages scanned</div></div>
<div class="card" style="border-color:#8e44ad"><div class="num" id="with-findings">{{ totals.with_findings }}</div><div class="lbl">with findings</div></div>
<div class="card" style="border-color:#c0392b"><div class="num">{{ totals.verdicts.get("block", 0) }}</div><div class="lbl">would be blocked</div></div>
<div class="card" style="border-color:#8e44ad"><div class="num">{{ totals.verdicts.get("redact", 0) }}</div><div class="lbl">would be redacted</div></div>
<div class="card" style="border-color:#d68910"><div class="num">{{ totals.verdicts.get("warn", 0) }}</div><div class="lbl">would warn</div></div>
<div class="card" style="border-color:#9aa5b1"><div class="num">{{ totals.messages - totals.scanned }}</div><div class="lbl">messages skipped</div></div>
</div>
<div class="panel wide"><h2>Messages with findings over time{% if chart.monthly %} (per month){% endif %}</h2>
<svg class="chart" id="timeline" viewBox="0 0 {{ chart.width }} {{ chart.height }}" role="img" aria-label="messages with findings over time">
{% for t in chart.ticks %}<line x1="{{ chart.left }}" x2="{{ chart.width - 6 }}" y1="{{ t.y }}" y2="{{ t.y }}" class="grid"/><text x="{{ chart.left - 6 }}" y="{{ t.y + 4 }}" class="axis" text-anchor="end">{{ t.value }}</text>
{% endfor %}{% for b in chart.bars %}<rect class="bar" x="{{ b.x }}" y="{{ b.y }}" width="{{ b.w }}" height="{{ b.h }}"><title>{{ b.key }}: {{ b.hit }} of {{ b.scanned }} messages</title></rect>{% if b.label %}<text x="{{ b.x }}" y="{{ chart.height - 8 }}" class="axis">{{ b.key }}</text>{% endif %}
{% endfor %}</svg></div>
<div class="grid wide">
<div class="panel"><h2>Entity types</h2><table id="entities"><tr><th>entity</th><th>messages</th><th>findings</th></tr>
{% for name, row in entities %}<tr><td><code>{{ name }}</code></td><td><svg class="meter" width="96" height="10" aria-hidden="true"><rect width="{{ (96 * row[0] / peak)|round(1) }}" height="10" rx="2" fill="#8e44ad"/></svg>{{ row[0] }}</td><td>{{ row[1] }}</td></tr>
{% else %}<tr><td colspan="3" class="muted">no findings</td></tr>{% endfor %}</table></div>
<div class="panel"><h2>Conversations</h2><table id="channels"><tr><th>conversation</th><th>scanned</th><th>with findings</th><th>findings</th></tr>
{% for name, row in channels %}<tr><td>{{ name }}</td><td>{{ row[0] }}</td><td>{{ row[1] }}</td><td>{{ row[2] }}</td></tr>
{% else %}<tr><td colspan="4" class="muted">no findings</td></tr>{% endfor %}</table></div>
<div class="panel"><h2>Top rules</h2><table id="rules"><tr><th>rule</th><th>messages</th><th>findings</th></tr>
{% for name, row in rules %}<tr><td><code>{{ name }}</code></td><td>{{ row[0] }}</td><td>{{ row[1] }}</td></tr>{% endfor %}</table></div>
<div class="panel"><h2>Who posted them</h2><table id="posters"><tr><th>{{ "person" if names else "user id" }}</th><th>messages</th><th>findings</th></tr>
{% for name, row in posters %}<tr><td>{{ name }}</td><td>{{ row[0] }}</td><td>{{ row[1] }}</td></tr>{% endfor %}</table>
{% if not names %}<p class="hint">User ids only; pass <code>--names</code> to show names.</p>{% endif %}</div>
</div>
<div class="panel wide"><h2>Riskiest messages (every finding redacted)</h2><table id="riskiest"><tr><th>where</th><th>when</th><th>who</th><th>verdict</th><th>entities</th><th>message</th></tr>
{% for t in top %}<tr><td>{% if t.permalink %}<a href="{{ t.permalink }}">{{ t.where }}</a>{% else %}{{ t.where }}{% endif %}</td><td>{{ t.day }}</td><td>{{ t.who }}</td>
<td><span class="pill" style="background:{{ colours.get(t.verdict, '#7b8794') }}">{{ t.verdict }}</span></td><td>{{ t.entities|join(", ") }}</td><td class="excerpt">{{ t.excerpt }}</td></tr>
{% else %}<tr><td colspan="6" class="muted">nothing found</td></tr>{% endfor %}</table></div>
<div class="panel wide"><h2>What was scanned</h2><table id="scope">
<tr><td>messages read</td><td>{{ totals.messages }} ({{ totals.replies }} thread replies, {{ totals.bots }} bot posts, {{ totals.edited }} edited, {{ totals.files }} files)</td></tr>
{% for reason, n in totals.skipped|dictsort %}<tr><td>messages skipped</td><td>{{ n }}: {{ reason }}</td></tr>{% endfor %}
{% for reason, n in skipped_units|dictsort %}<tr><td>not read (last run)</td><td>{{ n }}: {{ reason }}</td></tr>{% endfor %}
{% for r in runs %}<tr><td>run {{ loop.index }}</td><td>{{ r.started }}: {{ r.units_scanned }} of {{ r.units_total }} {{ "day files" if r.source == "export" else "conversations" }} scanned ({{ r.units_resumed }} already done), {{ r.seconds }} s{% if r.filters.since or r.filters.until or r.filters.channels or r.filters.exclude_channels %}; filters {{ r.filters }}{% endif %}</td></tr>{% endfor %}
</table></div>
</main><footer>Generated by slack-pii. Offsets, entity types and rule ids only: no value found is stored in this report.</footer></body></html>
"""
