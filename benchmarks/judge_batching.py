"""Judge time for the same pairs, one call per answer against one call for the whole batch.

    python benchmarks/judge_batching.py [--answers 80]

An answer's pairs mix one long pair (the reference against the whole answer, up to 256 tokens)
with short sentence pairs; judged alone, the short ones are padded to the long one's length.
One call sorts every pair of every answer by length (grader.written.scoring.assess_answers, which
`grader grade`, `grader eval` and the exemplar calibration use). Two sets: the rubrics'
graded exemplars (what building the indexes judges at start-up) and the course's labelled
answers. Each timing starts from an empty memo; the largest difference between the two runs'
probabilities is printed beside the ratio.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import yaml

from grader.pipeline import load_judge
from grader.rubric import load_rubric_dir
from grader.written.embedding import Encoder
from grader.written.judge import DEFAULT_NAME, Judge
from grader.written.scoring import ScoringConfig, all_answer_texts, assess, build_indexes, judge_pairs

ROOT = Path(__file__).resolve().parent.parent


def timed(judge: Judge, batches: list[list[tuple[str, str]]]) -> tuple[float, dict]:
    """Seconds to judge the batches, one classify() call each, from an empty memo; and the probabilities."""
    judge._memo.clear()
    started = time.perf_counter()
    for batch in batches:
        judge.classify(batch)
    seconds = time.perf_counter() - started
    return seconds, dict(judge._memo)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=80, help="Labelled answers to judge (the first N).")
    args = parser.parse_args()

    rubrics = load_rubric_dir(ROOT / "rubrics")
    encoder = Encoder()
    judge = load_judge(DEFAULT_NAME)
    indexes = build_indexes(rubrics, encoder, ScoringConfig())  # no judge: its pairs are what is timed
    items = yaml.safe_load((ROOT / "tests" / "data" / "labelled_answers.yaml").read_text())[: args.answers]
    sets = {
        "rubric exemplars": [(pid, ex.answer) for pid, ix in indexes.items() for ex in ix.part.exemplars],
        "labelled answers": [(item["part"], item["answer"]) for item in items],
    }
    print(f"judge {judge.identity}, {judge.device}")
    for name, answers in sets.items():
        encoder.prime(all_answer_texts(text for _, text in answers))
        per_answer = [judge_pairs(indexes[pid], assess(indexes[pid], text, encoder)) for pid, text in answers]
        pairs = sorted({p for batch in per_answer for p in batch})
        one_s, one = timed(judge, [pairs])
        each_s, each = timed(judge, per_answer)
        diff = max(float(np.max(np.abs(one[p] - each[p]))) for p in pairs)
        print(
            f"{name}: {len(answers)} answers, {len(pairs)} distinct pairs: one call {one_s:.1f} s, "
            f"a call per answer {each_s:.1f} s ({each_s / one_s:.2f}x); largest probability difference {diff:.1e}"
        )


if __name__ == "__main__":
    main()
