#!/usr/bin/env python3
"""Generate /work/blind/part1/messages.jsonl (500 labelled Slack messages).

Seeded with random.Random(1101) (values.SEED); rerunning yields identical output.
Hand-written templates live in templates_pos.py / templates_neg.py, value
generators in values.py, the placeholder renderer in engine.py.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import values as V  # noqa: E402
from engine import render  # noqa: E402
from templates_neg import NEG  # noqa: E402
from templates_pos import POS  # noqa: E402

N_TOTAL = 500
N_CLEAN = 250
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "messages.jsonl")


def cycle(templates, n):
    """Every template at least once, then further shuffled passes, until n."""
    order = []
    while len(order) < n:
        t = list(templates)
        V.rng.shuffle(t)
        order.extend(t)
    return order[:n]


def main():
    assert len(set(POS)) == len(POS), "duplicate positive template"
    assert len(set(NEG)) == len(NEG), "duplicate negative template"
    assert len(POS) + len(NEG) >= 150
    assert len(V.ALL_GIVEN) >= 150 and len(V.ALL_FAMILY) >= 150, (len(V.ALL_GIVEN), len(V.ALL_FAMILY))

    msgs = []
    seen = set()

    def add(t, want_spans):
        # re-render a reused template until its text is new (static templates
        # that cannot produce a new text are swapped for another template)
        for _ in range(20):
            text, spans = render(t)
            assert bool(spans) == want_spans, t
            if text not in seen:
                seen.add(text)
                msgs.append((text, spans))
                return True
        return False

    for pool, n, want in ((NEG, N_CLEAN, False), (POS, N_TOTAL - N_CLEAN, True)):
        order = cycle(pool, n)
        i = 0
        while sum(1 for _, sp in msgs if bool(sp) == want) < n:
            t = order[i] if i < len(order) else V.rng.choice(pool)
            i += 1
            add(t, want)
    V.rng.shuffle(msgs)

    with open(OUT, "w", encoding="utf-8") as f:
        for i, (text, spans) in enumerate(msgs, 1):
            f.write(json.dumps({"id": f"p1-{i:05d}", "text": text, "spans": spans}, ensure_ascii=False) + "\n")
    print(f"wrote {len(msgs)} messages to {OUT} ({len(POS)} positive + {len(NEG)} clean templates)")


if __name__ == "__main__":
    main()
