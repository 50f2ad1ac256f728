"""A seeded generator of realistic Slack workspace exports, for the export-scan bench and tests.

Shaped like the export an admin downloads: users.json, channels.json, groups.json, dms.json, mpims.json and one
folder per conversation with one JSON file per day. Messages come in every form the scanner must read: plain
text, rich_text blocks with a text fallback, bot posts with attachments, files (titles and snippet previews),
thread parents and replies, edited messages, a Slack Connect user from another team, and join messages (which
hold nothing to scan). Texts come from `tools/corpus.py` unless the caller passes its own (tests plant values).

    python -m slack_pii.tools.history_corpus OUT_DIR --count 100000 [--zip]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from collections.abc import Sequence
from pathlib import Path

TEAM, OTHER_TEAM = "T0ACME0001", "T0GLOBEX01"
START = 1_711_929_600  # 2024-04-01T00:00:00Z
SPAN_DAYS = 60
PUBLIC = ["general", "random", "eng", "support", "sales", "incidents"]
PRIVATE = ["security-team", "hr-private"]
SHAPES = (("plain", 50), ("reply", 16), ("blocks", 10), ("bot", 7), ("file", 5), ("snippet", 3), ("edited", 6),
          ("external", 3))


def _users(rng: random.Random) -> list[dict]:
    from slack_pii.tools.corpus import FIRST, LAST

    users = []
    for i in range(24):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        users.append({"id": f"U{i:09d}A", "team_id": TEAM, "name": f"{first.lower()}.{last.lower()}",
                      "real_name": f"{first} {last}", "profile": {"real_name": f"{first} {last}",
                                                                  "display_name": first}})
    users.append({"id": "U99EXTERNAL", "team_id": OTHER_TEAM, "name": "partner", "real_name": "Partner Person",
                  "profile": {"real_name": "Partner Person", "display_name": "Partner"}})
    return users


def _conversations(users: list[dict]) -> dict[str, list[dict]]:
    members = [u["id"] for u in users[:-1]]
    channels = [{"id": f"C{i:09d}P", "name": name, "created": START, "members": members} for i, name in
                enumerate(PUBLIC)]
    groups = [{"id": f"G{i:09d}Q", "name": name, "created": START, "members": members[:6]} for i, name in
              enumerate(PRIVATE)]
    dms = [{"id": f"D{i:09d}R", "created": START, "members": [members[i], members[i + 1]]} for i in range(4)]
    mpims = [{"id": f"G{i:09d}M", "name": f"mpdm-{users[i]['name']}--{users[i + 1]['name']}--{users[i + 2]['name']}-1",
              "created": START, "members": members[i:i + 3]} for i in range(2)]
    return {"channels.json": channels, "groups.json": groups, "dms.json": dms, "mpims.json": mpims}


def _folder(kind: str, entry: dict) -> str:
    return entry["id"] if kind == "dms.json" else entry["name"]


def _message(shape: str, text: str, ts: str, user: str, rng: random.Random) -> dict:
    base = {"type": "message", "ts": ts, "user": user, "team": TEAM, "user_team": TEAM, "source_team": TEAM,
            "user_profile": {"real_name": "someone", "display_name": "someone"}}
    if shape == "blocks":
        return {**base, "text": text, "blocks": [{"type": "rich_text", "block_id": f"b{rng.randrange(10**6)}",
                                                 "elements": [{"type": "rich_text_section",
                                                               "elements": [{"type": "text", "text": text}]}]}]}
    if shape == "bot":
        return {"type": "message", "subtype": "bot_message", "ts": ts, "bot_id": "B0ALERTS01", "username": "alerts",
                "text": "", "attachments": [{"fallback": "alert", "color": "danger", "title": "Alert fired",
                                             "text": text, "footer": "monitoring"}]}
    if shape == "file":
        return {**base, "text": text, "files": [{"id": f"F{rng.randrange(10**9):09d}", "name": "notes.pdf",
                                                 "title": "notes", "mimetype": "application/pdf", "size": 1234}]}
    if shape == "snippet":
        return {**base, "text": "", "files": [{"id": f"F{rng.randrange(10**9):09d}", "name": "snippet.txt",
                                               "title": "snippet", "mimetype": "text/plain", "preview": text}]}
    if shape == "edited":
        return {**base, "text": text, "edited": {"user": user, "ts": ts}}
    if shape == "external":
        return {**base, "user": "U99EXTERNAL", "user_team": OTHER_TEAM, "source_team": OTHER_TEAM, "text": text}
    return {**base, "text": text}


def generate_export(folder: Path, count: int, seed: int = 1, texts: Sequence[str] | None = None,
                    joins: int | None = None) -> dict:
    """Write an export with `count` text-bearing messages (plus `joins` join messages) into `folder`.

    Returns a manifest: how many messages of each shape, and for each text index where it went
    ({"channel", "ts"}), so a test can compare a report against what it planted. Memory stays at one day.
    """
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    users = _users(rng)
    metadata = _conversations(users)
    (folder / "users.json").write_text(json.dumps(users), encoding="utf-8")
    for name, entries in metadata.items():
        (folder / name).write_text(json.dumps(entries), encoding="utf-8")
    places = [(kind, entry) for kind, entries in metadata.items() for entry in entries]
    weights = [6 if kind == "channels.json" else 2 if kind == "groups.json" else 1 for kind, _ in places]
    texts = list(texts) if texts is not None else _corpus_texts(count, seed)
    joins = max(1, count // 50) if joins is None else joins
    total = count + joins
    join_at = set(rng.sample(range(total), joins))
    shapes, shape_weights = zip(*SHAPES)
    manifest: dict = {"messages": total, "shapes": {}, "placed": []}
    day_files: dict[tuple[str, str], list[dict]] = {}
    last_parent: dict[str, dict] = {}
    current_day = ""
    text_index = 0
    for i in range(total):
        when = START + i * (SPAN_DAYS * 86400) / total
        ts = f"{int(when)}.{i % 1_000_000:06d}"
        day = _day(when)
        if day != current_day:  # threads stay within a day, so a parent is complete when its day is written
            _flush(folder, day_files)
            last_parent.clear()
            current_day = day
        kind, entry = rng.choices(places, weights)[0]
        where = _folder(kind, entry)
        user = rng.choice(entry["members"])
        if i in join_at:
            message = {"type": "message", "subtype": "channel_join", "ts": ts, "user": user,
                       "text": f"<@{user}> has joined the channel"}
            shape = "join"
        else:
            shape = rng.choices(shapes, shape_weights)[0]
            parent = last_parent.get(where)
            if shape == "reply" and parent is None:
                shape = "plain"
            message = _message("plain" if shape == "reply" else shape, texts[text_index], ts, user, rng)
            if shape == "reply":
                message["thread_ts"] = parent["thread_ts"]
                message["parent_user_id"] = parent.get("user", "")
                parent["reply_count"] = parent.get("reply_count", 0) + 1
                parent.setdefault("replies", []).append({"user": user, "ts": ts})
            elif shape != "bot":
                message["thread_ts"] = ts
                last_parent[where] = message
            manifest["placed"].append({"channel": entry["id"], "ts": ts, "shape": shape})
            text_index += 1
        manifest["shapes"][shape] = manifest["shapes"].get(shape, 0) + 1
        day_files.setdefault((where, day), []).append(message)
    _flush(folder, day_files)
    return manifest


def _flush(folder: Path, day_files: dict[tuple[str, str], list[dict]]) -> None:
    for (where, day), items in day_files.items():
        for message in items:  # a message nobody replied to carries no thread_ts in a real export
            if message.get("thread_ts") == message["ts"] and not message.get("reply_count"):
                del message["thread_ts"]
        (folder / where).mkdir(exist_ok=True)
        (folder / where / f"{day}.json").write_text(json.dumps(items, ensure_ascii=False, indent=1), encoding="utf-8")
    day_files.clear()


def _day(when: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(when, timezone.utc).date().isoformat()


def _corpus_texts(count: int, seed: int) -> list[str]:
    from slack_pii.tools.corpus import generate

    return [record["text"] for record in generate(count, seed)]


def zip_export(folder: Path, target: Path) -> Path:
    """The export as the .zip Slack hands out (files at the top of the archive)."""
    return Path(shutil.make_archive(str(target.with_suffix("")), "zip", root_dir=folder))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a generated Slack workspace export.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--zip", action="store_true", help="also write OUT.zip")
    args = parser.parse_args(argv)
    manifest = generate_export(args.out, args.count, args.seed)
    if args.zip:
        print(zip_export(args.out, args.out.with_suffix(".zip")))
    print(json.dumps(manifest["shapes"]))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
