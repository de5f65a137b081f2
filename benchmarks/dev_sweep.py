"""Choose a scorer setting where nothing was tuned: on the train questions held out of the judge's training.

The shipped judge was trained with `--dev-fraction 0.2` (training/judge_data.py, `split_dev`): a
seeded fifth of each dataset's train questions never reached it. This script grades those
questions' answers (the "dev" rows) under each setting of a grid, fitting the 2-way threshold or
the points line on the other train questions' answers, as `grader eval` fits them on the train
split. Test splits are never read. Pick a setting here, then confirm it on the test splits with
benchmarks/agreement.py. Every setting after the grid's first also prints its change from the
first with a 95% interval from resampling whole questions: the dev rows are answers to a few
dozen questions, and a change inside that interval is not one they can vouch for.

A dev split of questions from the training domains cannot show a domain shift. For that, train a
judge with `--dev-modules scientsbank:MS,scientsbank:MX,scientsbank:PS` (whole SciEntsBank modules
held out, as its unseen-domains split holds out whole domains) and pass the same `--dev-modules`
and `--judge DIR` here, with `--only scientsbank`.

    python benchmarks/dev_sweep.py DATASETS_DIR --grid '{"distinct_topic": [1.01, 0.6, 0.5, 0.4]}' \
        [--only scientsbank,beetle] [--cache DIR] [--exemplars 0] [--predictions DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "training"))

from grader.evaluation import (  # noqa: E402
    EvalSession,
    Predictions,
    change_between,
    evaluate,
    load_dataset,
    write_predictions,
)
from grader.evaluation.dataset import Dataset  # noqa: E402
from grader.written import cached_models  # noqa: E402
from grader.written.judge import DEFAULT_NAME as DEFAULT_JUDGE  # noqa: E402
from grader.written.scoring import ScoringConfig  # noqa: E402

from judge_data import read_rows, split_dev, split_modules  # noqa: E402

FILES = {"scientsbank": "scientsbank_2way.csv", "beetle": "beetle_2way.csv", "saf": "saf_en_v2.csv"}


def dev_dataset(datasets: Path, name: str, held: set[str]) -> Dataset:
    """The dataset's train split only, its held-out questions renamed "dev" and the rest kept as "train"."""
    ds = load_dataset(datasets / FILES[name])
    train = ds.train_split
    rows = [
        replace(r, split="dev" if f"{name}:{r.question_id}" in held else "train") for r in ds.rows if r.split == train
    ]
    return Dataset(path=ds.path, rows=rows, task=ds.task, splits=["train", "dev"])


def versus_first(before: Predictions, after: Predictions) -> str:
    """The change from the grid's first setting, with a 95% interval over questions (dev rows are few questions)."""
    if before is after:
        return ""
    change = change_between(before, after)
    if change is None or change.difference is None or change.low is None or change.high is None:
        return ""
    return f" change {change.difference:+.3f} [{change.low:+.3f}, {change.high:+.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", type=Path)
    parser.add_argument("--grid", default="{}", help="JSON: ScoringConfig field -> list of values.")
    parser.add_argument("--only", default="scientsbank,beetle,saf")
    parser.add_argument("--exemplars", type=int, default=0)
    parser.add_argument("--dev-fraction", type=float, default=0.2, help="As the judge was trained (its meta file).")
    parser.add_argument(
        "--dev-modules",
        default="",
        help="As a judge trained with --dev-modules was (a domain shift), e.g. scientsbank:MS,scientsbank:MX.",
    )
    parser.add_argument("--judge", default=DEFAULT_JUDGE)
    parser.add_argument("--cache", type=Path, default=None, help="SQLite cache of vectors and judge probabilities.")
    parser.add_argument(
        "--predictions",
        type=Path,
        default=None,
        help="Write one CSV per dataset and setting here (`grader eval --predictions`): what "
        "training/fit_confidence.py fits the confidence model on.",
    )
    args = parser.parse_args()

    rows, _ = read_rows(args.datasets)
    if args.dev_modules:
        held = {r.question_id for r in split_modules(rows, args.dev_modules.split(","))[1]}
    else:
        held = {r.question_id for r in split_dev(rows, args.dev_fraction, 0)[1]}
    data = {name: dev_dataset(args.datasets, name, held) for name in args.only.split(",")}
    encoder, judge = cached_models(args.cache, judge=args.judge)
    grid = json.loads(args.grid)
    first: dict[str, Predictions] = {}  # the grid's first setting: every other one is compared with it
    for values in itertools.product(*grid.values()):
        setting = dict(zip(grid, values))
        t0 = time.perf_counter()
        session = EvalSession(encoder, ScoringConfig(**setting), judge)
        cells = []
        for name, dataset in data.items():
            result, predictions = evaluate(
                dataset, split="dev", exemplars=args.exemplars, session=session, return_predictions=True
            )
            if args.predictions:
                args.predictions.mkdir(parents=True, exist_ok=True)
                tag = "_".join(f"{k}={v}" for k, v in setting.items())
                write_predictions(predictions, args.predictions / f"{name}_dev_{args.exemplars}{tag and '_' + tag}.csv")
            metric = "accuracy" if result.task == "2way" else "pearson"
            grader, baseline = result.metrics["grader"], result.metrics["baseline"]
            cells.append(
                f"{name} n={result.n} {metric} {getattr(grader, metric):.3f} (baseline {getattr(baseline, metric):.3f})"
                f" AUROC {grader.confidence_auroc or 0:.3f}"
                + (
                    f" r(fractions) {grader.pearson_fraction:.3f} (baseline {baseline.pearson_fraction or 0:.3f})"
                    if grader.pearson_fraction is not None
                    else ""
                )
                + versus_first(first.setdefault(name, predictions), predictions)
            )
        print(json.dumps(setting), "|", " | ".join(cells), f"[{time.perf_counter() - t0:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
