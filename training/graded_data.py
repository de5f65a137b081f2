"""The public human-graded datasets training reads: their train splits as rows, and a manifest of what was read.

Expected in one directory (see training/README.md for where to obtain them):
scientsbank_2way.csv and beetle_2way.csv (SemEval-2013 Task 7) and saf_en_v2.csv (SAF).
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATASET_FILES = {
    "scientsbank": ("scientsbank_2way.csv", "train"),
    "beetle": ("beetle_2way.csv", "train"),
    "saf": ("saf_en_v2.csv", "training"),
}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Row:
    dataset: str
    question_id: str
    references: list[str]
    student_answer: str
    label: float
    answer_id: str


def read_rows(datasets: Path, splits: dict[str, set[str]] | None = None) -> tuple[list[Row], dict]:
    """Rows of each dataset's train split (or of `splits`), and a manifest of what was read."""
    rows: list[Row] = []
    manifest: dict = {"files": {}}
    for name, (filename, train_split) in DATASET_FILES.items():
        path = datasets / filename
        wanted = (splits or {}).get(name, {train_split})
        with path.open(encoding="utf-8-sig", newline="") as fh:
            records = [r for r in csv.DictReader(fh) if r["split"] in wanted]
        ids = []
        for r in records:
            if name == "saf":
                refs = [r["reference_answer"].strip()]
                label = float(r["score_norm"])
            else:
                refs = [t.strip() for t in r["reference_answers"].split(" || ") if t.strip()] or [r["reference_answer"]]
                label = 1.0 if r["label_2way"].strip().lower() == "correct" else 0.0
            answer = r["student_answer"].strip()
            if not answer:
                continue
            rows.append(Row(name, f"{name}:{r['question_id']}", refs, answer, label, r["student_answer_id"]))
            ids.append(r["student_answer_id"])
        manifest["files"][filename] = {
            "sha256": sha256_file(path),
            "splits": sorted(wanted),
            "rows": len(ids),
            "questions": len({r["question_id"] for r in records}),
            "student_answer_ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
        }
    return rows, manifest
def split_sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9])", text.strip())
    return [p.strip() for p in parts if len(p.split()) >= 3]

def split_dev(rows: list[Row], fraction: float, seed: int) -> tuple[list[Row], list[Row]]:
    """For choosing settings only: hold out whole questions (fraction) of each dataset."""
    rng = np.random.default_rng([seed, 7])
    qids = sorted({r.question_id for r in rows})
    held = {q for q in qids if rng.random() < fraction}
    return [r for r in rows if r.question_id not in held], [r for r in rows if r.question_id in held]
