"""Agreement with human graders on the public short-answer datasets: grader vs plain cosine.

Runs the `grader eval` harness (grader.evaluation) on the test splits of SciEntsBank
(unseen answers, questions, domains), Beetle (unseen answers, questions) and SAF
(unseen answers, questions), each without and with 5 exemplars per question, in one
process (one encoder; every text is embedded once). Prints a Markdown table
(dataset, split, exemplars, metric, plain-cosine baseline, grader, and the grader's lead over the
baseline with a 95% interval from resampling whole questions) and the
`grader eval` command that reproduces each row. Thresholds and the baseline's line
are fitted on each dataset's train split; nothing is tuned on a test split.

    python benchmarks/agreement.py DATASETS_DIR [--only saf] [--limit N] [--seed S]
        [--keypoints sentences|whole] [--config '{"match_low": 0.35}'] [--json-out results.json]
        [--cache DIR] [--predictions DIR]

--cache keeps the vectors and the judge's probabilities in a SQLite cache (grader.cache), so a
re-run after a change to the scorer (not to the models) re-scores every answer in minutes.
--predictions writes one CSV per run (`grader eval --predictions`).

The datasets are not part of the repository: pass the directory that holds
scientsbank_2way.csv, beetle_2way.csv and saf_en_v2.csv.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from grader.evaluation import EvalResult, EvalSession, evaluate, load_dataset
from grader.evaluation.run import write_predictions
from grader.written import cached_models
from grader.written.judge import DEFAULT_NAME as DEFAULT_JUDGE
from grader.written.scoring import ScoringConfig

RUNS: list[tuple[str, str, list[str]]] = [
    ("scientsbank", "scientsbank_2way.csv", ["test-unseen-answers", "test-unseen-questions", "test-unseen-domains"]),
    ("beetle", "beetle_2way.csv", ["test-unseen-answers", "test-unseen-questions"]),
    ("saf", "saf_en_v2.csv", ["unseen_answers", "unseen_questions"]),
]
EXEMPLARS = (0, 5)
"""Exemplars per question; --exemplars adds more (e.g. 20: a TA has graded a stack of answers)."""
METRICS = {
    "2way": ("accuracy", "macro_f1", "confidence_auroc"),
    "points": ("pearson", "spearman", "rmse", "mae", "qwk", "exact", "pearson_fraction", "confidence_auroc"),
}
"""pearson_fraction (Pearson on points / max) is shown because SAF's questions have maxima from 0.5 to 3.5:
the pooled Pearson on points rewards knowing each question's maximum (the baseline's line scales by it)."""


def command(path: Path, split: str, exemplars: int, seed: int, keypoints: str, limit: int | None,
            model: str = "all-MiniLM-L6-v2", int8: bool = False, judge: str | None = DEFAULT_JUDGE) -> str:
    args = ["grader", "eval", str(path), "--split", split]
    if model != "all-MiniLM-L6-v2":
        args += ["--model", model]
    if int8:
        args += ["--int8"]
    if judge is None:
        args += ["--no-judge"]
    elif judge != DEFAULT_JUDGE:
        args += ["--judge", judge]
    if exemplars:
        args += ["--exemplars", str(exemplars)]
    if (exemplars or limit) and seed:
        args += ["--seed", str(seed)]
    if keypoints != "sentences":
        args += ["--keypoints", keypoints]
    if limit:
        args += ["--limit", str(limit)]
    return " ".join(shlex.quote(a) for a in args)


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def interval(result: EvalResult, metric: str) -> str:
    """The lead's interval on its own metric's row (grader.evaluation.intervals)."""
    lead = result.lead
    if lead is None or lead.metric != metric or lead.low is None or lead.high is None:
        return ""
    return f"[{lead.low:+.3f}, {lead.high:+.3f}] ({lead.questions} q)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", type=Path, help="Directory with scientsbank_2way.csv, beetle_2way.csv, saf_en_v2.csv")
    parser.add_argument("--only", action="append", choices=[r[0] for r in RUNS], help="Run only this dataset (repeatable).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="Seeded sample of N rows per run (quick look, not for the README).")
    parser.add_argument("--keypoints", choices=["whole", "sentences"], default="sentences")
    parser.add_argument("--config", default="{}", help="JSON overrides of ScoringConfig (the shipped defaults otherwise).")
    parser.add_argument("--json-out", type=Path, default=None, help="Also write every EvalResult to this JSON file.")
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="Grader's embedding model (the baseline stays MiniLM).")
    parser.add_argument("--int8", action="store_true", help="int8-quantised encoder for the grader.")
    parser.add_argument("--judge", default=DEFAULT_JUDGE, help="Cross-encoder judge for the grader (default: %(default)s).")
    parser.add_argument("--no-judge", action="store_true", help="Similarity only, no judge.")
    parser.add_argument("--exemplars", default=",".join(map(str, EXEMPLARS)), help="Comma list of exemplar counts.")
    parser.add_argument("--cache", type=Path, default=None, help="SQLite cache of vectors and judge probabilities.")
    parser.add_argument("--predictions", type=Path, default=None, help="Directory for one predictions CSV per run.")
    args = parser.parse_args()
    counts = [int(k) for k in args.exemplars.split(",")]

    started = time.perf_counter()
    encoder, judge = cached_models(args.cache, args.model, None if args.no_judge else args.judge, args.int8)
    session = EvalSession(encoder, ScoringConfig(**json.loads(args.config)), judge)
    if args.predictions:
        args.predictions.mkdir(parents=True, exist_ok=True)
    results: list[tuple[str, Path, EvalResult]] = []
    for name, filename, splits in RUNS:
        if args.only and name not in args.only:
            continue
        path = args.datasets / filename
        if not path.is_file():
            sys.exit(f"{path}: not found (pass the directory that holds the dataset CSVs)")
        dataset = load_dataset(path)
        for split in splits:
            for k in counts:
                t0 = time.perf_counter()
                result, predictions = evaluate(
                    dataset, split=split, exemplars=k, seed=args.seed, keypoints=args.keypoints,
                    limit=args.limit, session=session, return_predictions=True,
                )
                if args.predictions:
                    write_predictions(predictions, args.predictions / f"{name}_{split}_{k}.csv")
                results.append((name, path, result))
                print(f"[{time.perf_counter() - t0:6.1f} s] {name} {split} exemplars={k} n={result.n}", file=sys.stderr)

    print(f"model: {session.encoder.identity}; judge: {judge.identity if judge else 'none'}; keypoints: {args.keypoints}; seed: {args.seed}; "
          f"scoring overrides: {args.config}\n")
    print("| dataset | split | exemplars/question | n | metric | plain-cosine baseline | grader | grader without exemplars (same rows) "
          "| grader - baseline, 95% interval over questions |")
    print("|---|---|---:|---:|---|---:|---:|---:|---|")
    for name, _path, r in results:
        for metric in METRICS[r.task]:
            no_ex = r.metrics.get("grader_no_exemplars")
            if getattr(r.metrics["grader"], metric) is None and metric in ("pearson_fraction", "confidence_auroc"):
                continue
            print(
                f"| {name} | {r.split} | {r.settings.exemplars} | {r.n} | {metric} | "
                f"{fmt(getattr(r.metrics['baseline'], metric))} | {fmt(getattr(r.metrics['grader'], metric))} | "
                f"{fmt(getattr(no_ex, metric)) if no_ex else ''} | {interval(r, metric)} |"
            )
    print("\nCommands (one `grader eval` per table row group; add --json for the numbers as JSON):\n")
    print("```")
    for _name, path, r in results:
        print(command(path, r.split or "", r.settings.exemplars, args.seed, args.keypoints, args.limit,
                      args.model, args.int8, None if args.no_judge else args.judge))
    print("```")
    wall = time.perf_counter() - started
    print(f"\nwall time: {wall:.0f} s")
    if args.json_out:
        args.json_out.write_text(
            json.dumps([{"name": n, **r.model_dump()} for n, _, r in results], indent=2) + "\n", encoding="utf-8"
        )


if __name__ == "__main__":
    main()
