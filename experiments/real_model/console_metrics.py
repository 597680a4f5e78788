#!/usr/bin/env python3
"""VERL's console step lines ("step:N - key:value - ...") -> metrics JSONL, for a launch whose
own metrics file did not survive (the machine that ran it is gone).

    python experiments/real_model/console_metrics.py job.log > metrics.jsonl
"""

from __future__ import annotations

import json
import re
import sys

STEP = re.compile(r"step:(\d+) - (.*)$")
NUMBER = re.compile(r"^(?:np\.\w+\()?(-?[0-9.eE+-]+|nan|inf)\)?$")


def parse(lines):
    by_step: dict[int, dict] = {}
    for line in lines:
        m = STEP.search(line.rstrip())
        if not m:
            continue
        data = {}
        for item in m.group(2).split(" - "):
            key, _, value = item.rpartition(":")
            v = NUMBER.match(value.strip())
            if key and v:
                data[key] = float(v.group(1))
        if data:
            by_step.setdefault(int(m.group(1)), {}).update(data)
    return by_step


if __name__ == "__main__":
    with open(sys.argv[1], errors="replace") as f:
        for step, data in sorted(parse(f).items()):
            print(json.dumps({"step": step, "data": data}))
