#!/usr/bin/env python3
"""Rebuild the NLI JSON Lines files and the Beetle 5-way train labels from public git snapshots.

Every input is read with `git show <commit>:<path>` from a bare mirror of a public GitHub
repository, pinned to the commit named in SOURCES, so the output is reproducible byte for byte.
Usage: python3 convert.py [MIRROR_ROOT] [OUT_DIR]
  MIRROR_ROOT holds one bare clone per repository named owner+name/repo (required)
  OUT_DIR receives *.jsonl (default: this file's folder); semeval_labels.jsonl goes to OUT_DIR/..
"""
from __future__ import annotations

import collections
import csv
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

MIRRORS = Path(sys.argv[1]) if len(sys.argv) > 1 else sys.exit(__doc__)
OUT = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parent

SOURCES = {
    "fnlp": ("1710763616/fnlp.github.io", "fe7281d19ef30bc59a83bfd6417ae3502dea0699"),
    "felsal": ("felipessalvatore/NLI_datasets", "9551b739a830fafb2ec4b98d49a9ecd4bf3dcbd0"),
    "sick": ("kkalouli/SICK-processing", "0848f4aec60870122a4ca18de08ba0e25f6f9a75"),
    "esnli": ("OanaMariaCamburu/e-SNLI", "7b585a3f077fdea899780eb0473940522ae44a2e"),
    "bnli": ("BIU-NLP/Breaking_NLI", "8a7658c1ce6b732f4e8af3b06560f1a13b8b18b0"),
    "cad": ("acmi-lab/counterfactually-augmented-data", "6f232a1d2a11462a30ce08fb4825b734ab30828e"),
    "sra": ("ashudeep/Student-Response-Analysis", "1d6d30b265e6038fd6f6395d4cfd6686aef4b97f"),
}
csv.field_size_limit(10**8)


def show(key: str, path: str) -> bytes:
    repo, commit = SOURCES[key]
    gitdir = MIRRORS / repo.replace("/", "+") / "repo"
    return subprocess.run(
        ["git", "--git-dir", str(gitdir), "show", f"{commit}:{path}"], check=True, capture_output=True
    ).stdout


def text(key: str, path: str) -> str:
    return show(key, path).decode("utf-8")


def row(premise: str, hypothesis: str, label: str, source: str, split: str) -> dict:
    assert label in ("entailment", "neutral", "contradiction"), label
    premise, hypothesis = premise.strip(), hypothesis.strip()
    assert premise and hypothesis, (source, split, premise, hypothesis)
    return {"premise": premise, "hypothesis": hypothesis, "label": label, "source": source, "split": split}


def unquote_twice_quoted(field: str) -> str:
    """SciTail's TSV carries some fields CSV-quoted once more than the csv reader removes."""
    if len(field) >= 2 and field.startswith('"') and field.endswith('"'):
        return field[1:-1].replace('""', '"')
    return field


def scitail() -> list[dict]:
    # train/dev: fnlp.github.io data/SciTail.zip (0 = neutral, 1 = entails; 499 train rows carry the words)
    archive = zipfile.ZipFile(io.BytesIO(show("fnlp", "data/SciTail.zip")))
    labels = {"0": "neutral", "1": "entailment", "neutral": "neutral", "entails": "entailment"}
    out = []
    for split in ("train", "dev"):
        reader = csv.reader(io.StringIO(archive.read(f"SciTail/{split}.tsv").decode("utf-8"), newline=""), delimiter="\t")
        header = next(reader)
        assert header == ["premise", "hypothesis", "label"], header
        for p, h, lab in reader:
            out.append(row(unquote_twice_quoted(p), unquote_twice_quoted(h), labels[lab], "scitail", split))
    # test: the zip's test.tsv is unlabelled; felipessalvatore/NLI_datasets scitail/dev.csv is the
    # SciTail test split (2126 rows, same order) with labels entailment / not_entailment.
    unlabelled = list(csv.reader(io.StringIO(archive.read("SciTail/test.tsv").decode("utf-8"), newline=""), delimiter="\t"))[1:]
    labelled = list(csv.DictReader(io.StringIO(text("felsal", "nli_datasets/scitail/dev.csv"), newline="")))
    assert len(unlabelled) == len(labelled) == 2126
    for (_, p, h), r in zip(unlabelled, labelled):
        assert (p, h) == (r["premise"], r["hypothesis"]), (p, r["premise"])
        out.append(row(p, h, {"entailment": "entailment", "not_entailment": "neutral"}[r["label"]], "scitail", "test"))
    return out


def sick() -> list[dict]:
    reader = csv.DictReader(io.StringIO(text("sick", "SICK.txt"), newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    split = {"TRAIN": "train", "TRIAL": "dev", "TEST": "test"}
    return [
        row(r["sentence_A"], r["sentence_B"], r["entailment_label"].strip().lower(), "sick", split[r["SemEval_set"].strip()])
        for r in reader
    ]


def felsal(name: str, source: str) -> list[dict]:
    reader = csv.DictReader(io.StringIO(text("felsal", f"nli_datasets/{name}/dev.csv"), newline=""))
    return [row(r["premise"], r["hypothesis"], r["label"], source, "dev") for r in reader]


def esnli_test() -> list[dict]:
    base = "dataset/eSNLI/"
    s1, s2, lab = (text("esnli", base + f).rstrip("\n").split("\n") for f in ("s1.test", "s2.test", "labels.test"))
    assert len(s1) == len(s2) == len(lab) == 9824
    return [row(p, h, label.strip(), "snli", "test") for p, h, label in zip(s1, s2, lab)]


def breaking_nli() -> list[dict]:
    archive = zipfile.ZipFile(io.BytesIO(show("bnli", "breaking_nli_dataset.zip")))
    lines = archive.read("data/dataset.jsonl").decode("utf-8").splitlines()
    return [row(d["sentence1"], d["sentence2"], d["gold_label"], "breaking_nli", "test") for d in map(json.loads, lines)]


def cad() -> list[dict]:
    out = []
    for split in ("train", "dev", "test"):
        reader = csv.DictReader(io.StringIO(text("cad", f"NLI/all_combined/{split}.tsv"), newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
        out += [row(r["sentence1"], r["sentence2"], r["gold_label"], "cad_snli", split) for r in reader]
    return out


def semeval_beetle() -> list[dict]:
    gold = list(csv.DictReader(io.StringIO(text("sra", "evaluationScripts/trainingGold.txt"), newline=""), delimiter="\t", quoting=csv.QUOTE_NONE))
    answers = {}
    for r in csv.reader(io.StringIO(text("sra", "semevalFormatProcessing-5way/answers.csv"), newline=""), delimiter="\t", quoting=csv.QUOTE_NONE):
        if len(r) == 3:  # training answers: id, question, student answer
            answers[r[0]] = r[2]
    three = {"correct": "correct", "contradictory": "contradictory"}
    out = []
    for g in gold:
        five = g["accuracy"].strip()
        assert five in ("correct", "contradictory", "partially_correct_incomplete", "irrelevant", "non_domain"), five
        out.append({
            "dataset": "beetle",
            "question_id": g["qid"],
            "student_answer_id": g["id"],
            "answer": answers[g["id"]],
            "label_3way": three.get(five, "incorrect"),
            "label_5way": five,
        })
    return out


def write(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    files = {
        "scitail.jsonl": scitail(),
        "sick.jsonl": sick(),
        "mnli_dev.jsonl": felsal("mnli", "mnli"),
        "snli_dev_test.jsonl": felsal("snli", "snli") + esnli_test(),
        "breaking_nli.jsonl": breaking_nli(),
        "cad_snli.jsonl": cad(),
    }
    for name, rows in files.items():
        write(OUT / name, rows)
    write(OUT.parent / "semeval_labels.jsonl", semeval_beetle())
    for path in sorted(OUT.glob("*.jsonl")) + [OUT.parent / "semeval_labels.jsonl"]:
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
        key = "label_5way" if path.name == "semeval_labels.jsonl" else "label"
        counts = collections.Counter((r.get("split", "train"), r[key]) for r in rows)
        print(path.name, len(rows), hashlib.sha256(path.read_bytes()).hexdigest(), dict(sorted(counts.items())))


if __name__ == "__main__":
    main()
