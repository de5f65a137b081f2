"""Batch throughput: N synthetic students, the time split, the encoder's share, the regrade speedup, peak RSS.

    python benchmarks/batch.py 1000                # one size
    python benchmarks/batch.py 250 500 1000        # memory as N grows
    python benchmarks/batch.py 200 --no-code       # written parts only
    python benchmarks/batch.py 250 --no-judge      # similarity only (no judge, no cost arm)
    python benchmarks/batch.py 50 --no-code --backend ray --workers 1,2   # Ray actors vs a local run

For each N, in fresh processes on this machine (each run is a subprocess, so
model loading and peak RSS are per run):

1. generate N submissions from the shipped samples: each part's answer is mixed
   from 1-2 sample students' answers to it (sentences dropped and reordered,
   typos added so many texts are new), 10% of parts left out, code parts taken
   from the correct and wrong answers in tests/data/code_answers (no hostile ones:
   their time limits would measure the limits, not the grader);
2. cold run: `grader grade` (default options, so with the cross-encoder judge) into an empty
   cache and output directory; the same class is also graded with `--no-judge`, into its own
   cache, for the judge's cost (with `--no-judge` here, only that run);
3. raw encoder: the same distinct texts the cold run encoded, straight through
   SentenceTransformer.encode (batch 64, same device), timed in its own process:
   the floor a run cannot beat; (raw + judge time) / cold is the models' share of the run;
4. the same texts through the int8-quantised encoder (`--int8`), for its speedup;
5. regrade: one part's rubric edited (q3.a's first misconception penalty), the same
   cache, a new output directory.

With `--backend ray --workers 1,2`, each N is graded once locally (the baseline) and then on a
Ray cluster started on this machine (`ray start --head` on the loopback, as many CPUs as the
largest number of actors) with each number of actors (one CPU each), each run into its own empty cache: students/s, the ratio to the local run, whether the gradebook is the local one,
and each actor's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grader.written.judge import DEFAULT_NAME as DEFAULT_JUDGE  # light: no torch until a judge is loaded

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "submissions"
CODE_ANSWERS = ROOT / "tests" / "data" / "code_answers"
RUBRICS = ROOT / "rubrics"


# -- synthetic class ------------------------------------------------------------------------------
def _answer_pools():
    from grader.intake import discover, parse_source
    from grader.pipeline import layout_of
    from grader.rubric import load_rubric_dir
    from grader.written.sentences import split_sentences

    rubrics = load_rubric_dir(RUBRICS)
    written: dict[str, list[list[str]]] = {}
    for source in discover([SAMPLES])[0]:
        submission = parse_source(source, layout_of(rubrics))
        for answer in submission.answers:
            _, part = rubrics.part(answer.part_id)
            if part.kind == "written":
                sentences = split_sentences(answer.text)
                if sentences:
                    written.setdefault(answer.part_id, []).append(sentences)
    code = {
        part_dir.name: [p.read_text() for p in sorted(part_dir.glob("*.py")) if not p.name.startswith("hostile")]
        for part_dir in sorted(CODE_ANSWERS.iterdir())
    }
    return rubrics, written, code


def _typo(sentence: str, rng: random.Random) -> str:
    words = sentence.split()
    candidates = [i for i, w in enumerate(words) if len(w) > 4 and w.isalpha()]
    if not candidates:
        return sentence
    i = rng.choice(candidates)
    w = words[i]
    j = rng.randrange(1, len(w) - 2)
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    return " ".join(words)


def generate_class(n: int, directory: Path, seed: int = 0, with_code: bool = True) -> None:
    """Write n Markdown submissions (code as fenced blocks) mixed and perturbed from the samples."""
    rng = random.Random(seed)
    rubrics, written, code = _answer_pools()
    directory.mkdir(parents=True, exist_ok=True)
    for s in range(n):
        lines: list[str] = []
        for rubric in rubrics.rubrics:
            lines.append(f"## Question {re.sub(r'[^0-9]', '', rubric.id)}\n")
            for part in rubric.parts:
                part_id = rubric.qualified(part)
                if rng.random() < 0.10:
                    continue
                if part.kind == "code":
                    if with_code and code.get(part_id):
                        lines.append(f"### ({part.id})\n\n```python\n{rng.choice(code[part_id]).strip()}\n```\n")
                    continue
                pool = written.get(part_id)
                if not pool:
                    continue
                sentences = list(rng.choice(pool))
                if len(pool) > 1 and rng.random() < 0.5:
                    sentences += rng.sample(rng.choice(pool), k=1)
                if len(sentences) > 2 and rng.random() < 0.5:
                    sentences.pop(rng.randrange(len(sentences)))
                if len(sentences) > 1 and rng.random() < 0.3:
                    i = rng.randrange(len(sentences) - 1)
                    sentences[i], sentences[i + 1] = sentences[i + 1], sentences[i]
                sentences = [_typo(x, rng) if rng.random() < 0.3 else x for x in sentences]
                lines.append(f"### ({part.id})\n{' '.join(sentences)}\n")
        (directory / f"student{s:05d}.md").write_text("\n".join(lines))


# -- workers (each in its own process) ------------------------------------------------------------
def worker_grade(args: argparse.Namespace) -> dict:
    from grader.batch import run_batch
    from grader.intake import discover
    from grader.pipeline import GradeOptions, Grader
    from grader.rubric import load_rubric_dir

    started = time.perf_counter()
    encoded: list[str] = []
    options = GradeOptions(cache_dir=Path(args.cache), run_code=not args.no_code,
                           judge=None if args.no_judge else args.judge, device=args.device)
    if args.backend == "ray":
        from grader.options import ClusterOptions
        from grader.ray_backend import RayGrader

        cluster = ClusterOptions(backend="ray", workers=args.workers, address=args.address)
        grader = RayGrader(load_rubric_dir(args.rubrics), options, cluster)
    else:
        grader = Grader(load_rubric_dir(args.rubrics), options)
        original = grader.encoder._encode_new

        def recording(texts):  # noqa: ANN001, ANN202 - benchmark-only spy on what reaches the model
            encoded.extend(texts)
            return original(texts)

        grader.encoder._encode_new = recording
    setup_s = time.perf_counter() - started
    sources, _ = discover([Path(args.submissions)])
    t0 = time.perf_counter()
    outcome = run_batch(grader, sources, Path(args.out), resume=False)
    run_s = time.perf_counter() - t0
    remote = grader.remote if args.backend == "ray" else None
    grader.close()
    if args.texts:
        Path(args.texts).write_text(json.dumps(encoded))
    st = grader.stats
    return {
        "actors_peak_rss_mb": sorted(remote.peak_rss_mb.values()) if remote else [],
        "n": len(sources),
        "graded": outcome.summary.n_graded,
        "setup_s": setup_s,
        "run_s": run_s,
        "wall_s": time.perf_counter() - started,
        "parse_s": st.parse_s,
        "encode_s": st.encode_s,
        "judge_s": st.judge_s,
        "score_s": st.score_s,
        "code_wait_s": st.code_wait_s,
        "report_s": st.report_s,
        "texts_encoded": remote.n_texts_encoded if remote else len(encoded),
        "parts_scored": st.n_parts_scored,
        "parts_from_cache": st.n_parts_from_cache,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def worker_raw(args: argparse.Namespace) -> dict:
    from grader.written.embedding import Encoder

    texts = json.loads(Path(args.texts).read_text())
    encoder = Encoder(int8=args.int8, device=args.device)
    encoder.model.encode(["warm up"] * 64, batch_size=64)
    t0 = time.perf_counter()
    encoder.model.encode(texts, batch_size=encoder.batch_size, convert_to_numpy=True, normalize_embeddings=True,
                         show_progress_bar=False)
    raw_s = time.perf_counter() - t0
    return {"texts": len(texts), "raw_s": raw_s, "texts_per_s": len(texts) / raw_s if raw_s else 0.0}


def _spawn(*argv: str) -> dict:
    cmd = [sys.executable, __file__, *argv]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"worker failed: {' '.join(cmd)}\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - t0
    return result


def bench(n: int, work: Path, with_code: bool, judge: str | None = None, device: str | None = None) -> dict:
    subs, cache = work / f"class{n}", work / f"cache{n}"
    generate_class(n, subs, seed=n, with_code=with_code)
    device_flag = ["--device", device] if device else []
    code_flag = [*([] if with_code else ["--no-code"]), *device_flag]
    judge_flag = ["--judge", judge] if judge else ["--no-judge"]
    texts = work / f"texts{n}.json"
    cold = _spawn("--worker", "grade", "--submissions", str(subs), "--rubrics", str(RUBRICS), "--cache", str(cache),
                  "--out", str(work / f"out{n}"), "--texts", str(texts), *code_flag, *judge_flag)
    # with a judge: the same class without it, into its own cache: the judge's cost, same run
    plain = _spawn("--worker", "grade", "--submissions", str(subs), "--rubrics", str(RUBRICS),
                   "--cache", str(work / f"cache{n}-nojudge"), "--out", str(work / f"out{n}-nojudge"),
                   "--no-judge", *code_flag) if judge else cold
    raw = _spawn("--worker", "raw", "--texts", str(texts), *device_flag)
    raw_int8 = _spawn("--worker", "raw", "--texts", str(texts), "--int8", *device_flag)
    edited = work / f"rubrics{n}"
    shutil.copytree(RUBRICS, edited)
    q3 = edited / "q3.yaml"
    q3.write_text(q3.read_text().replace("penalty: 2.0", "penalty: 2.5", 1))
    regrade = _spawn("--worker", "grade", "--submissions", str(subs), "--rubrics", str(edited), "--cache", str(cache),
                     "--out", str(work / f"regrade{n}"), *code_flag, *judge_flag)
    return {"n": n, "cold": cold, "plain": plain, "raw": raw, "raw_int8": raw_int8, "regrade": regrade}


def bench_ray(n: int, work: Path, with_code: bool, judge: str | None, workers: list[int], device: str | None) -> dict:
    """One local run and one Ray run per number of actors, each into its own empty cache."""
    subs = work / f"class{n}"
    generate_class(n, subs, seed=n, with_code=with_code)
    flags = [*([] if with_code else ["--no-code"]), *(["--judge", judge] if judge else ["--no-judge"]),
             *(["--device", device] if device else [])]

    def run(name: str, *extra: str) -> dict:
        result = _spawn("--worker", "grade", "--submissions", str(subs), "--rubrics", str(RUBRICS),
                        "--cache", str(work / f"cache{n}-{name}"), "--out", str(work / f"out{n}-{name}"), *flags, *extra)
        result["gradebook"] = (work / f"out{n}-{name}" / "gradebook.csv").read_text()
        return result

    from grader.ray_backend import LOCAL_HEAD_ENV, local_cluster

    os.environ.update(LOCAL_HEAD_ENV)  # the Ray runs' drivers join the head below
    local = run("local")
    with local_cluster(num_cpus=max(workers)) as address:  # one head for every arm, as on a cluster
        arms = {w: run(f"ray{w}", "--backend", "ray", "--workers", str(w), "--address", address) for w in workers}
    return {"n": n, "local": local, "ray": arms}


def _ray_table(rows: list[dict]) -> str:
    out = [
        "| N | run | students/s | vs local | same gradebook | setup (cluster + models) | texts encoded | driver peak RSS | actors' peak RSS |",
        "|---:|---|---:|---:|---|---:|---:|---:|---|",
    ]
    for r in rows:
        base = r["local"]
        out.append(f"| {r['n']} | local | {base['n'] / base['run_s']:.2f} | 1.00x | - | {base['setup_s']:.1f} s | "
                   f"{base['texts_encoded']} | {base['peak_rss_mb']:.0f} MB | - |")
        for w, arm in r["ray"].items():
            out.append(
                f"| {r['n']} | ray, {w} actor{'s' if w > 1 else ''} | {arm['n'] / arm['run_s']:.2f} | "
                f"{base['run_s'] / arm['run_s']:.2f}x | {'yes' if arm['gradebook'] == base['gradebook'] else 'NO'} | "
                f"{arm['setup_s']:.1f} s | {arm['texts_encoded']} | {arm['peak_rss_mb']:.0f} MB | "
                f"{', '.join(f'{m:.0f} MB' for m in arm['actors_peak_rss_mb'])} |"
            )
    out.append("")
    out.append("'vs local' is the local run's time over the Ray run's, both without process start and model "
               "loading ('run'); one CPU per actor; the driver parses and writes on the same machine.")
    return "\n".join(out)


def _table(rows: list[dict]) -> str:
    out = [
        "| N | students/s | wall (run) | parse* | encode | judge | score | code wait | report | texts encoded | raw encoder | model share ((raw + judge)/run) | run without judge | judge cost | regrade (run) | regrade speedup | peak RSS |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        c, p, raw, g = r["cold"], r["plain"], r["raw"], r["regrade"]
        out.append(
            f"| {r['n']} | {c['n'] / c['run_s']:.2f} | {c['run_s']:.1f} s | {c['parse_s']:.1f} s | {c['encode_s']:.1f} s | "
            f"{c['judge_s']:.1f} s | {c['score_s']:.1f} s | {c['code_wait_s']:.1f} s | {c['report_s']:.1f} s | {c['texts_encoded']} | "
            f"{raw['raw_s']:.1f} s ({raw['texts_per_s']:.0f}/s) | {(raw['raw_s'] + c['judge_s']) / c['run_s']:.0%} | "
            f"{p['run_s']:.1f} s | {c['run_s'] / p['run_s']:.2f}x | {g['run_s']:.2f} s | "
            f"{c['run_s'] / g['run_s']:.0f}x | {c['peak_rss_mb']:.0f} MB |"
        )
    out.append("")
    out.append("*parse runs on a second thread, overlapping encoding. 'run' excludes process start and model load "
               "(setup). int8 encoder (--int8) on the same texts: " + "; ".join(
                   f"N={r['n']}: {r['raw_int8']['raw_s']:.1f} s, {r['raw']['raw_s'] / r['raw_int8']['raw_s']:.2f}x the fp32 encoder"
                   for r in rows) + ". With process start and model load: " + "; ".join(
                   f"N={r['n']}: cold {r['cold']['process_s']:.1f} s, regrade {r['regrade']['process_s']:.1f} s "
                   f"({r['cold']['process_s'] / r['regrade']['process_s']:.0f}x)" for r in rows))
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int)
    parser.add_argument("--work", type=Path, default=None, help="Working directory (default: a temporary one).")
    parser.add_argument("--no-code", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", choices=["grade", "raw"], help=argparse.SUPPRESS)
    parser.add_argument("--submissions", help=argparse.SUPPRESS)
    parser.add_argument("--rubrics", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--texts", help=argparse.SUPPRESS)
    parser.add_argument("--int8", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--judge", default=DEFAULT_JUDGE, help="The cross-encoder judge graded with (the default's); its cost is measured against --no-judge.")
    parser.add_argument("--no-judge", action="store_true", help="Grade without a judge (no cost arm).")
    parser.add_argument("--device", default=None, help="Where the models run: cpu, cuda (default: cuda when torch sees one).")
    parser.add_argument("--backend", choices=["local", "ray"], default="local",
                        help="ray: compare Ray runs (one per --workers value) with a local run.")
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--workers", default="1,2",
                        help="With --backend ray: actor counts to measure, comma-separated (a number in a worker run).")
    args = parser.parse_args()
    if args.worker:
        if args.backend == "ray":
            args.workers = int(args.workers)
        result = worker_grade(args) if args.worker == "grade" else worker_raw(args)
        print(json.dumps(result))
        return
    if not args.sizes:
        parser.error("give at least one N")
    work = args.work or Path(tempfile.mkdtemp(prefix="grader-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("GRADER_CACHE_DIR", str(work / "unused-default-cache"))
    rows = []
    judge = None if args.no_judge else args.judge
    for n in args.sizes:
        if args.backend == "ray":
            rows.append(bench_ray(n, work, not args.no_code, judge, [int(w) for w in args.workers.split(",")], args.device))
        else:
            rows.append(bench(n, work, with_code=not args.no_code, judge=judge, device=args.device))
        print(f"N={n} done", file=sys.stderr)
    print(json.dumps(rows, indent=2) if args.json else (_ray_table if args.backend == "ray" else _table)(rows))


if __name__ == "__main__":
    main()
