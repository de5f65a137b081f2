"""Training pairs for the judge: (rubric text, student text, target), from public data only.

Three sources, each optional and recorded in the data manifest:

* the train splits of the graded short-answer datasets (SciEntsBank ``train``, Beetle ``train``,
  SAF ``training``; never a test split): the reference answer against each student answer, with the
  human label (correct -> entailment; incorrect -> "not entailment"; SAF ``score_norm`` as a soft
  P(entailment); a Beetle answer labelled *contradictory* in the 5-way annotation -> contradiction);
* rule-made pairs built from those train rows (training/contradictions.py): a reference against
  its own negation, against a negated correct answer, a negated reference against a correct
  answer (contradiction), the same negation on both sides (entailment: polarity must agree, the
  word "not" alone must not decide), and a reference against correct answers to *other* questions
  (neutral: on topic is not the same as right);
* public NLI corpora converted to JSON Lines (``{"premise", "hypothesis", "label", "source",
  "split"}``; see training/README.md for where to get them): the premise plays the student, the
  hypothesis the rubric.

The judge reads ``[CLS] rubric [SEP] student [SEP]`` and answers entailment / neutral /
contradiction; a target is either one of those (hard) or a probability of entailment (soft).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contradictions import contract, perturbations

DATASET_FILES = {
    "scientsbank": ("scientsbank_2way.csv", "train"),
    "beetle": ("beetle_2way.csv", "train"),
    "saf": ("saf_en_v2.csv", "training"),
}
LABELS = ("entailment", "neutral", "contradiction")
"""The judge's classes, in the order of its head's outputs."""


@dataclass
class Row:
    dataset: str
    question_id: str
    references: list[str]
    answer: str
    label: float
    answer_id: str
    label_5way: str | None = None


@dataclass
class Item:
    rubric: str
    student: str
    target: str | float
    """One of LABELS, or P(entailment) in [0, 1] where only "right or not" is known."""
    kind: str


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_labels_5way(path: Path | None) -> dict[str, str]:
    """student_answer_id -> 5-way label (SemEval-2013 Task 7), for the train rows that have one."""
    if path is None:
        return {}
    out = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            out[record["student_answer_id"]] = record["label_5way"]
    return out


def read_questions(datasets: Path) -> dict[str, str]:
    """question id (dataset-prefixed, as in Row) -> the question text, for every dataset."""
    out: dict[str, str] = {}
    for name, (filename, _) in DATASET_FILES.items():
        with (datasets / filename).open(encoding="utf-8-sig", newline="") as fh:
            for r in csv.DictReader(fh):
                out.setdefault(f"{name}:{r['question_id']}", r["question"].strip())
    return out


def read_rows(datasets: Path, labels_5way: dict[str, str] | None = None,
              splits: dict[str, str] | None = None) -> tuple[list[Row], dict]:
    """Rows of each dataset's train split (or, for evaluation, of the split named in `splits`), and a manifest."""
    rows: list[Row] = []
    manifest: dict = {"files": {}}
    labels_5way = labels_5way or {}
    for name, (filename, train_split) in DATASET_FILES.items():
        if splits is not None and name not in splits:
            continue
        wanted = splits[name] if splits is not None else train_split
        path = datasets / filename
        with path.open(encoding="utf-8-sig", newline="") as fh:
            records = [r for r in csv.DictReader(fh) if r["split"] == wanted]
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
            answer_id = r["student_answer_id"]
            rows.append(Row(name, f"{name}:{r['question_id']}", refs, answer, label, answer_id, labels_5way.get(answer_id)))
            ids.append(answer_id)
        manifest["files"][filename] = {
            "sha256": sha256_file(path),
            "split": wanted,
            "rows": len(ids),
            "questions": len({r["question_id"] for r in records}),
            "student_answer_ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
        }
    return rows, manifest


def split_dev(rows: list[Row], fraction: float, seed: int) -> tuple[list[Row], list[Row]]:
    """For choosing settings only: hold out whole questions (fraction) of each dataset."""
    rng = np.random.default_rng([seed, 7])
    qids = sorted({r.question_id for r in rows})
    held = {q for q in qids if rng.random() < fraction}
    return [r for r in rows if r.question_id not in held], [r for r in rows if r.question_id in held]


def split_modules(rows: list[Row], modules: list[str]) -> tuple[list[Row], list[Row]]:
    """For choosing settings under a domain shift: hold out every question of the named modules.

    A module is a question-id prefix ("scientsbank:ME" holds out SciEntsBank's ME_* questions): a
    judge trained without them meets their vocabulary as it meets an unseen domain.
    """
    prefixes = tuple(f"{m}_" for m in modules)
    held = [r for r in rows if r.question_id.startswith(prefixes)]
    return [r for r in rows if not r.question_id.startswith(prefixes)], held


_WORD = re.compile(r"[a-z0-9]+")


def _overlap(a: str, b: str) -> float:
    wa, wb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    return len(wa & wb) / max(1, len(wa | wb))


def closest_reference(refs: list[str], answer: str) -> str:
    """The acceptable answer sharing most words with the student's (the scorer takes the best wording too)."""
    if len(refs) == 1:
        return refs[0]
    return refs[int(np.argmax([_overlap(r, answer) for r in refs]))]


def split_sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9])", text.strip())
    return [p.strip() for p in parts if len(p.split()) >= 3]


PARTIAL_5WAY = frozenset({"partially_correct_incomplete", "irrelevant", "non_domain"})
_CONNECTIVE = re.compile(r",?\s+(?:because|since|so that|so|which|when|and)\s+", re.IGNORECASE)


def _real_target(row: Row, partial_neutral: bool = False) -> str | float:
    if row.label_5way == "contradictory":
        return "contradiction"
    if partial_neutral and row.label_5way in PARTIAL_5WAY:
        return "neutral"
    if row.dataset == "saf":
        return float(min(1.0, max(0.0, row.label)))
    return "entailment" if row.label >= 1.0 else 0.0


_STOP = frozenset(
    "the a an is are was were be been of to in on for with by from at as that this these those it its they them "
    "their there and or but if then than so because can could will would should may might do does did has have had "
    "into also only more most less very each all any both such not no".split()
)


def keyword_list(text: str, rng: np.random.Generator) -> str | None:
    """The content words of a text as a bare, comma-separated list: the topic, without a claim."""
    words = list(dict.fromkeys(w for w in re.findall(r"[A-Za-z][A-Za-z-]+", text) if w.lower() not in _STOP))
    if len(words) < 3:
        return None
    keep = [words[int(i)] for i in sorted(rng.choice(len(words), size=min(len(words), 6), replace=False))]
    return ", ".join(keep)


def first_part(sentence: str) -> str | None:
    """The sentence up to its first connective ("X because Y" -> "X"), when both sides have 3+ words: a part of a
    claim, which does not state the whole of it (neutral, not a contradiction)."""
    match = _CONNECTIVE.search(sentence)
    if not match:
        return None
    head, tail = sentence[: match.start()].strip(), sentence[match.end():].strip()
    return head + "." if len(head.split()) >= 3 and len(tail.split()) >= 3 else None


def dataset_items(rows: list[Row], rng: np.random.Generator, off_topic_per_question: int = 6,
                  saf_rows: int = 1000, questions: dict[str, str] | None = None,
                  partial_neutral: bool = False) -> list[Item]:
    """Real (reference, answer) pairs with their human labels, and the rule-made pairs built from them.

    With `questions`, also topic-only neutrals: a reference's content words as a bare list, and the
    question restated as the answer (on topic, no claim).
    """
    saf = [r for r in rows if r.dataset == "saf"]
    if saf_rows and len(saf) > saf_rows:
        keep = {id(saf[i]) for i in rng.choice(len(saf), size=saf_rows, replace=False)}
        rows = [r for r in rows if r.dataset != "saf" or id(r) in keep]
    by_q: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_q[r.question_id].append(r)
    correct: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for qid, q_rows in sorted(by_q.items()):
        for r in q_rows:
            if r.label >= 1.0 and len(r.answer.split()) >= 3:
                correct[r.dataset].append((qid, r.answer))
    items: list[Item] = []
    for qid in sorted(by_q):
        q_rows = by_q[qid]
        for r in q_rows:
            target = _real_target(r, partial_neutral)
            items.append(Item(closest_reference(r.references, r.answer), r.answer, target, f"real_{r.dataset}"))
        refs = list(dict.fromkeys(ref for r in q_rows for ref in r.references))
        sentences = list(dict.fromkeys(s for ref in refs for s in (split_sentences(ref) or [ref])))
        for s in sentences[:6]:
            items.append(Item(s, s, "entailment", "ref_self"))
            part = first_part(s) if partial_neutral else None
            if part:
                items.append(Item(s, part, "neutral", "ref_part"))
            for flipped, _rule in perturbations(s):
                items.append(Item(s, flipped, "contradiction", "ref_contra"))
        for r in q_rows:
            if r.label < 1.0 or r.dataset == "saf" or len(r.answer.split()) < 3:
                continue
            ref = closest_reference(r.references, r.answer)
            for (flipped, rule), (flipped_ref, ref_rule) in zip(perturbations(r.answer), perturbations(ref) or [(None, None)] * 2):
                items.append(Item(ref, flipped, "contradiction", "ans_contra"))
                if flipped_ref is not None and rule == ref_rule:
                    items.append(Item(flipped_ref, flipped, "entailment", "both_contra"))
            for flipped_ref, _rule in perturbations(ref)[:1]:
                items.append(Item(flipped_ref, r.answer, "contradiction", "kp_contra"))
            contracted = contract(r.answer)
            if contracted:
                items.append(Item(ref, contracted, "entailment", "contraction"))
        if questions is not None:
            for ref in refs[:2]:
                listed = keyword_list(ref, rng)
                if listed:
                    items.append(Item(ref, listed, "neutral", "keyword_list"))
            if questions.get(qid) and refs:
                items.append(Item(refs[0], questions[qid], "neutral", "question_copy"))
        others = [a for q, a in correct[q_rows[0].dataset] if q != qid]
        if others and refs:
            for i in rng.choice(len(others), size=min(off_topic_per_question, len(others)), replace=False):
                items.append(Item(refs[0], others[int(i)], "neutral", "off_topic"))
    return items


def nli_items(nli_dir: Path, quotas: dict[str, int], rng: np.random.Generator) -> tuple[list[Item], dict]:
    """A seeded sample of each public NLI file (quota rows; 0 = all), train/dev rows only."""
    items: list[Item] = []
    manifest: dict = {}
    for source, quota in sorted(quotas.items()):
        path = nli_dir / f"{source}.jsonl"
        with path.open(encoding="utf-8") as fh:
            records = [json.loads(line) for line in fh]
        records = [r for r in records if r["split"] in ("train", "dev") or source in {"mnli_dev", "snli_dev_test", "breaking_nli"}]
        records = [r for r in records if r["label"] in LABELS and r["premise"] and r["hypothesis"]]
        if quota and len(records) > quota:
            records = [records[int(i)] for i in sorted(rng.choice(len(records), size=quota, replace=False))]
        items.extend(Item(r["hypothesis"], r["premise"], r["label"], f"nli_{source}") for r in records)
        manifest[path.name] = {"sha256": sha256_file(path), "rows_used": len(records)}
    return items, manifest
