"""How the scorer does on the course's labelled failure-mode set (tests/data/labelled_answers.yaml).

Prints, per category (the file's header lists them: complete answers, partial ones, wrong,
negated, off-topic, keyword lists, placeholders, other languages ...), how many answers land
inside the range a careful TA would give, with the raw score and with exemplar calibration; then
how well the confidence finds the judged answers that land outside it (AUROC of 1 - confidence). An
entry with ``expect_flag`` (e.g. other_language) is in range only when the part carries that flag.

    python benchmarks/labelled.py [--model PATH_OR_NAME] [--verbose] [--json] [--cache DIR]

--cache keeps vectors and the judge's probabilities on disk (grader.cache): a re-run after a change
to the scorer, not to the models, takes seconds.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import yaml

from grader.evaluation.metrics import auroc
from grader.rubric import load_rubric_dir
from grader.written import cached_models
from grader.written.confidence import HAND_MADE
from grader.written.judge import DEFAULT_NAME as DEFAULT_JUDGE
from grader.written.scoring import (
    ScoringConfig,
    assess_answers,
    build_indexes,
    final_points,
    graded_confidence,
)

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rubrics", type=Path, default=ROOT / "rubrics")
    parser.add_argument("--data", type=Path, default=ROOT / "tests" / "data" / "labelled_answers.yaml")
    parser.add_argument("--model", default=None)
    parser.add_argument("--config", default="{}", help="JSON overrides of ScoringConfig")
    parser.add_argument("--judge", default=DEFAULT_JUDGE, help="Cross-encoder judge (default: %(default)s)")
    parser.add_argument("--no-judge", action="store_true", help="Similarity only, no judge.")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--cache", type=Path, default=None, help="SQLite cache of vectors and judge probabilities.")
    args = parser.parse_args()

    rubrics = load_rubric_dir(args.rubrics)
    encoder, judge = cached_models(args.cache, args.model, None if args.no_judge else args.judge)
    indexes = build_indexes(rubrics, encoder, ScoringConfig(**json.loads(args.config)), judge)
    items = yaml.safe_load(args.data.read_text())
    window = ScoringConfig(**json.loads(args.config)).window
    assessments = assess_answers(indexes, [(item["part"], item["answer"]) for item in items], encoder, judge, window)
    table: dict[str, dict[str, int]] = defaultdict(lambda: {"n": 0, "raw_ok": 0, "calibrated_ok": 0})
    sure: list[tuple[float, float, bool, bool]] = []  # judged: confidence, hand-made, outside the range, by >= 0.25
    for item, assessment in zip(items, assessments):
        index = indexes[item["part"]]
        points, _ = final_points(index, assessment)
        low = item["expect"].get("min_fraction", 0.0)
        high = item["expect"].get("max_fraction", 1.0)
        row = table[item["category"]]
        row["n"] += 1
        calibrated = points / index.part.max_points
        flagged = item.get("expect_flag") is None or item["expect_flag"] in assessment.flags
        row["raw_ok"] += flagged and low - 1e-9 <= assessment.raw_score <= high + 1e-9
        ok = flagged and low - 1e-9 <= calibrated <= high + 1e-9
        row["calibrated_ok"] += ok
        confidence, read = graded_confidence(index, assessment, points)
        if read is not None:
            far = max(low - calibrated, calibrated - high) >= 0.25 - 1e-9
            sure.append((confidence, read[HAND_MADE], not ok, far))
        if args.verbose and not ok:
            print(
                f"MISS {item['part']} {item['category']}: {calibrated:.2f} (raw {assessment.raw_score:.2f}) "
                f"expected [{low}, {high}] flags={sorted(assessment.flags)}"
            )
    total = {k: sum(r[k] for r in table.values()) for k in ("n", "raw_ok", "calibrated_ok")}
    missed, far_off = [s[2] for s in sure], [s[3] for s in sure]
    confidence = {
        "judged": len(sure),
        "outside_range": sum(missed),
        "auroc": auroc([1 - s[0] for s in sure], missed),
        "auroc_hand_made": auroc([1 - s[1] for s in sure], missed),
        "far_outside": sum(far_off),
        "auroc_far": auroc([1 - s[0] for s in sure], far_off),
        "auroc_far_hand_made": auroc([1 - s[1] for s in sure], far_off),
    }
    if args.json:
        print(json.dumps({"model": encoder.identity, "categories": table, "total": total, "confidence": confidence}))
        return
    print(f"model: {encoder.identity}; judge: {judge.identity if judge else 'none'}; config: {args.config}")
    print("| category | n | in range (raw) | in range (calibrated) |\n|---|---:|---:|---:|")
    for cat in sorted(table):
        r = table[cat]
        print(f"| {cat} | {r['n']} | {r['raw_ok']} | {r['calibrated_ok']} |")
    print(f"| **total** | {total['n']} | {total['raw_ok']} | {total['calibrated_ok']} |")
    if sure:
        print(
            f"confidence AUROC for judged answers outside the TA's range: {confidence['auroc'] or 0:.3f} "
            f"(hand-made alone {confidence['auroc_hand_made'] or 0:.3f}; "
            f"{confidence['outside_range']} of {confidence['judged']} outside); for the "
            f"{confidence['far_outside']} outside by 0.25 or more: {confidence['auroc_far'] or 0:.3f} "
            f"(hand-made {confidence['auroc_far_hand_made'] or 0:.3f})"
        )


if __name__ == "__main__":
    main()
