"""Print the name of the config with the best mean dev score among OUT/dev_<name>.json (sweep.sh)."""
import json
import math
import sys
from pathlib import Path


def dev_score(report: dict) -> float:
    if isinstance(report.get("results"), list):  # evaluate_judge.py: accuracy (2-way) or Pearson (SAF) per dev set
        values = [r["judge"] for r in report["results"]]
    else:  # evaluate_encoder.py: the grader's accuracy / Pearson per dev set, first threshold pair
        runs = next(v for k, v in report["results"]["finetuned"].items() if k.startswith("agreement"))
        values = [m["grader"].get("accuracy") or m["grader"].get("pearson") for m in runs.values()]
    values = [v for v in values if v is not None and math.isfinite(v)]
    return sum(values) / len(values) if values else float("-inf")


scores = {f.stem[len("dev_"):]: dev_score(json.loads(f.read_text())) for f in Path(sys.argv[1]).glob("dev_*.json")}
for name, score in sorted(scores.items(), key=lambda kv: -kv[1]):
    print(f"{name}: mean dev score {score:.4f}", file=sys.stderr)
if scores:
    print(max(scores, key=scores.get))
