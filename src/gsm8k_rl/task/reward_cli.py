"""Score one model output against a gold answer with the training reward (gsm8k_rl/task/reward.py).

    gsm8k-rl reward "Janet makes **$18** a day." --gt 18
    gsm8k-rl reward - --gt 18 --json < output.txt

Prints the extracted answer, the rule that found it (hash / boxed / answer_is / last_number)
and the score, exactly as training and evaluation compute them.
"""

from __future__ import annotations

import argparse
import json
import sys

from gsm8k_rl import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", help='the model output; "-" reads it from stdin')
    parser.add_argument("--gt", required=True,
                        help='gold answer: a number, "1,234", or a full GSM8K solution "... #### N"')
    parser.add_argument("--json", action="store_true", help="print the details as one JSON object")


def run(args: argparse.Namespace) -> int:
    from gsm8k_rl.task.reward import parse_ground_truth, score_details

    text = sys.stdin.read() if args.text == "-" else args.text
    try:
        parse_ground_truth(args.gt)
    except ValueError as exc:
        raise UserError(f"--gt: {exc}") from None
    details = score_details(text, args.gt)
    if args.json:
        print(json.dumps(details))
    else:
        print(f"extracted: {details['extracted']}")
        print(f"gold:      {details['gold']}")
        print(f"rule:      {details['rule']}")
        print(f"score:     {details['score']}")
    return 0
