"""Measure a fine-tuned encoder against the bundled MiniLM, both run in the same process.

    # test splits: grader agreement (grader.evaluation.evaluate) + minimal-pair negation accuracy
    python training/evaluate_encoder.py ../shared/datasets --model grader-minilm-v1 \
        --config '{"match_low": 0.3, "match_high": 0.7}'

    # choosing settings: questions held out of a --dev-fraction training run (never a test split)
    python training/evaluate_encoder.py ../shared/datasets --model /tmp/dev-model --dev-fraction 0.2 \
        --grid 0.30,0.40,0.50:0.65,0.72,0.80

Minimal pairs: for each correct answer s of a question with reference r (alternatives: the
closest one under the model), and each rule-made contradiction (training/train_encoder.py
`perturbations`: negation inserted/removed, antonym swapped):

* ``answer_flip``: cos(r, s) > cos(r, flip(s)): the answer is closer to the key point than the
  same answer with its claim flipped;
* ``keypoint_flip``: cos(s, r) > cos(s, flip(r)): the answer is closer to the key point than to
  the flipped key point (what a misconception "the opposite of the key point" needs).

On the test splits the pairs come from questions no training row asked (SciEntsBank UQ and
UD, Beetle UQ, SAF unseen questions), so the references were never seen in training.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from train_encoder import DATASET_FILES, Row, perturbations, read_rows, split_dev, split_sentences  # noqa: E402

TEST_SPLITS = {
    "scientsbank": {"test-unseen-questions", "test-unseen-domains"},
    "beetle": {"test-unseen-questions"},
    "saf": {"unseen_questions"},
}
AGREEMENT = [
    ("scientsbank_2way.csv", "test-unseen-answers"),
    ("scientsbank_2way.csv", "test-unseen-questions"),
    ("beetle_2way.csv", "test-unseen-answers"),
    ("beetle_2way.csv", "test-unseen-questions"),
    ("saf_en_v2.csv", "unseen_questions"),
    ("saf_en_v2.csv", "unseen_answers"),
]


def minimal_pairs(rows: list[Row], encoder, max_per_question: int = 30) -> dict:  # noqa: ANN001
    """Accuracy of the two minimal-pair tests (module doc), by rule, over correct answers of `rows`."""
    by_q: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        if r.label >= 1.0 and len(r.student_answer.split()) >= 3 and r.dataset != "saf":
            by_q[r.question_id].append(r)
    # SAF answers are paragraphs: use its reference sentences against each other's flips only via keypoint_flip
    items = []  # (ref, answer, flipped answer or None, flipped ref or None, rule)
    for qid in sorted(by_q):
        for r in by_q[qid][:max_per_question]:
            items.append((r, qid))
    texts: set[str] = set()
    plan = []
    for r, qid in items:
        for ref in r.references:
            texts.add(ref)
        texts.add(r.student_answer)
        ans_flips = perturbations(r.student_answer)
        ref_flips = {ref: perturbations(ref) for ref in r.references}
        plan.append((r, ans_flips, ref_flips))
        texts.update(t for t, _ in ans_flips)
        texts.update(t for fl in ref_flips.values() for t, _ in fl)
    saf_refs = sorted({s for r in rows if r.dataset == "saf" for ref in r.references for s in split_sentences(ref)})
    saf_flips = {s: perturbations(s) for s in saf_refs}
    texts.update(saf_refs)
    texts.update(t for fl in saf_flips.values() for t, _ in fl)
    ordered = sorted(texts)
    vec = dict(zip(ordered, encoder.encode(ordered)))

    def cos(a: str, b: str) -> float:
        return float(vec[a] @ vec[b])

    hits: dict[str, list[int]] = defaultdict(list)
    gaps: dict[str, list[float]] = defaultdict(list)
    for r, ans_flips, ref_flips in plan:
        ref = max(r.references, key=lambda t: cos(t, r.student_answer))
        s = r.student_answer
        for flipped, rule in ans_flips:
            kind = "negation" if rule != "antonym" else "antonym"
            hits[f"answer_flip/{kind}"].append(int(cos(ref, s) > cos(ref, flipped)))
            gaps[f"answer_flip/{kind}"].append(cos(ref, s) - cos(ref, flipped))
        for flipped, rule in ref_flips[ref]:
            kind = "negation" if rule != "antonym" else "antonym"
            hits[f"keypoint_flip/{kind}"].append(int(cos(s, ref) > cos(s, flipped)))
            gaps[f"keypoint_flip/{kind}"].append(cos(s, ref) - cos(s, flipped))
    for s, flips in saf_flips.items():
        for flipped, rule in flips:
            kind = "negation" if rule != "antonym" else "antonym"
            gaps[f"self_cos/{kind}"].append(cos(s, flipped))
    out = {}
    for key in sorted(hits):
        out[key] = {"n": len(hits[key]), "accuracy": round(float(np.mean(hits[key])), 3),
                    "mean_gap": round(float(np.mean(gaps[key])), 3)}
    for key in sorted(k for k in gaps if k.startswith("self_cos")):
        out[key + " (SAF reference sentence vs its flip)"] = {"n": len(gaps[key]), "mean_cos": round(float(np.mean(gaps[key])), 3)}
    return out


def cosine_agreement(rows: list[Row], encoder) -> dict:  # noqa: ANN001
    """Whole answer vs closest reference: ROC AUC and best-threshold accuracy (2-way), Pearson (SAF), per dataset."""
    from sklearn.metrics import roc_auc_score

    texts = sorted({t for r in rows for t in [r.student_answer, *r.references]})
    vec = dict(zip(texts, encoder.encode(texts)))
    out = {}
    for name in DATASET_FILES:
        sub = [r for r in rows if r.dataset == name]
        if not sub:
            continue
        sims = np.array([max(float(vec[ref] @ vec[r.student_answer]) for ref in r.references) for r in sub])
        labels = np.array([r.label for r in sub])
        if name == "saf":
            out[name] = {"n": len(sub), "pearson": round(float(np.corrcoef(sims, labels)[0, 1]), 3)}
        else:
            best = max(float(np.mean((sims > t) == (labels > 0.5))) for t in np.unique(sims))
            out[name] = {"n": len(sub), "auc": round(float(roc_auc_score(labels > 0.5, sims)), 3),
                         "oracle_accuracy": round(best, 3)}
    return out


def dev_dataset(csv_path: Path, dataset_name: str, held: set[str]):  # noqa: ANN201
    """grader.evaluation's Dataset of a train split, with the held-out questions' rows renamed 'dev'."""
    from grader.evaluation import Dataset, load_dataset

    data = load_dataset(csv_path)
    train = data.train_split
    rows = []
    for r in data.rows:
        if r.split != train:
            continue
        split = "dev" if f"{dataset_name}:{r.question_id}" in held else train
        rows.append(dataclasses.replace(r, split=split))
    return Dataset(path=data.path, rows=rows, task=data.task, splits=[train, "dev"], notes=[])


def agreement(datasets: Path, encoder, scoring, limit: int | None, runs: list[tuple], seed: int = 0) -> dict:  # noqa: ANN001
    """grader.evaluation.evaluate on (csv or Dataset, split) runs; the summary metrics of each."""
    from grader.evaluation import EvalSession, evaluate, load_dataset

    session = EvalSession(encoder, scoring)
    loaded: dict = {}
    out = {}
    for source, split in runs:
        if isinstance(source, str):
            if source not in loaded:
                loaded[source] = load_dataset(datasets / source)
            data, label = loaded[source], f"{source}:{split}"
        else:
            data, label = source, f"{Path(source.path).name}:{split}"
        result = evaluate(data, split=split, session=session, limit=limit or None, seed=seed)
        out[label] = {
            "n": result.n,
            **{sys_name: {k: (round(v, 3) if isinstance(v, float) else v)
                          for k, v in m.model_dump().items() if k in ("accuracy", "macro_f1", "pearson", "pearson_fraction", "spearman", "rmse", "qwk")
                          and v is not None}
               for sys_name, m in result.metrics.items()},
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", type=Path)
    parser.add_argument("--model", required=True, help="the fine-tuned model (name under models/ or path)")
    parser.add_argument("--config", default="{}", help="ScoringConfig overrides for the fine-tuned model's grader run")
    parser.add_argument("--base-config", default="{}", help="ScoringConfig overrides for the base model's run")
    parser.add_argument("--limit", type=int, default=1500, help="rows per split sampled by grader eval (fit rows); 0: all")
    parser.add_argument("--dev-fraction", type=float, default=0.0, help="evaluate on the questions a dev run held out")
    parser.add_argument("--seed", type=int, default=0, help="the training seed (selects the same dev questions)")
    parser.add_argument("--grid", default=None, help="dev only: match_low values:match_high values to try")
    parser.add_argument("--skip", default="", help="comma list of parts to skip: pairs,cosine,agreement")
    parser.add_argument("--only-finetuned", action="store_true", help="do not measure the base model")
    parser.add_argument("--json", type=Path, default=None, help="write all numbers here")
    args = parser.parse_args()

    from grader.embedding import Encoder
    from grader.scoring import ScoringConfig

    skip = set(filter(None, args.skip.split(",")))
    encoders = {} if args.only_finetuned else {"base": (Encoder(), ScoringConfig(**json.loads(args.base_config)))}
    encoders["finetuned"] = (Encoder(args.model), ScoringConfig(**json.loads(args.config)))
    report: dict = {"model": encoders["finetuned"][0].identity, "config": json.loads(args.config), "results": {}}

    if args.dev_fraction:
        rows, _ = read_rows(args.datasets)
        train_rows, dev_rows = split_dev(rows, args.dev_fraction, args.seed)
        held = {r.question_id for r in dev_rows}
        pair_rows = dev_rows
        runs = [(dev_dataset(args.datasets / f, n, held), "dev") for n, (f, _) in DATASET_FILES.items()]
    else:
        pair_rows, _ = read_rows(args.datasets, TEST_SPLITS)
        runs = AGREEMENT

    for name, (encoder, scoring) in encoders.items():
        res: dict = {}
        t0 = time.time()
        if "pairs" not in skip:
            res["minimal_pairs"] = minimal_pairs(pair_rows, encoder)
            print(f"[{name}] minimal pairs ({time.time() - t0:.0f}s):", json.dumps(res["minimal_pairs"], indent=1), flush=True)
        if "cosine" not in skip and args.dev_fraction:
            res["cosine"] = cosine_agreement(pair_rows, encoder)
            print(f"[{name}] whole-answer cosine on dev:", json.dumps(res["cosine"]), flush=True)
        if "agreement" not in skip:
            grid = [(scoring.match_low, scoring.match_high)]
            if args.grid:
                lows, highs = args.grid.split(":")
                grid = [(float(lo), float(hi)) for lo in lows.split(",") for hi in highs.split(",") if float(hi) > float(lo) + 0.1]
            for low, high in grid:
                cfg = scoring.model_copy(update={"match_low": low, "match_high": high})
                t1 = time.time()
                out = agreement(args.datasets, encoder, cfg, args.limit, runs)
                key = f"agreement(match_low={low},match_high={high})"
                res[key] = out
                print(f"[{name}] {key} ({time.time() - t1:.0f}s):", flush=True)
                for label, m in out.items():
                    g, b = m.get("grader", {}), m.get("baseline", {})
                    print(f"   {label:45s} n={m['n']:5d} grader acc={g.get('accuracy')} f1={g.get('macro_f1')} "
                          f"r={g.get('pearson')} r_frac={g.get('pearson_fraction')} | cosine acc={b.get('accuracy')} "
                          f"f1={b.get('macro_f1')} r={b.get('pearson')} r_frac={b.get('pearson_fraction')}", flush=True)
        report["results"][name] = res
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
