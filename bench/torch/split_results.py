#!/usr/bin/env python3
"""Rewrites a torch_integration.json written before the duel's raw rounds had a
file of their own (tenth session) into the current layout, with the script's
own save(): FILE.json keeps the figures, checks and summaries, FILE_rounds.jsonl
every chunk's answer and every round's ratio. No number changes.

  python3 bench/torch/split_results.py bench/results/<card>-<date>/torch_integration.json ...
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_integration import save  # noqa: E402


def main():
    for path in sys.argv[1:]:
        with open(path) as f:
            result = json.load(f)
        save(os.path.dirname(path) or ".", os.path.basename(path)[:-len(".json")], result)
        print(f"{path}: split")


if __name__ == "__main__":
    main()
