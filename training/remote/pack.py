"""Pack what a remote GPU machine needs to run training/remote/sweep.sh, into .gpu/ (about 46 MB).

    python training/remote/pack.py [DATASETS]   (default ../shared/datasets)

The machine this was written for takes at most 64 MiB of files and cannot install packages from an
index, so the 91 MB base weights cannot travel as they are: .gpu/packed.safetensors holds them in
fp16, with only the word-embedding rows some dataset text (or a rule-made variant the training makes)
uses; unpack.py rebuilds the rest as NaN, so a text that needed a missing row shows up as NaN.
Also: the datasets (gzip), the base's config and tokenizer files, and py3.12 wheels of the Python
packages the grader needs beyond a CUDA PyTorch image, pinned to this environment's versions.
"""
import csv, gzip, shutil, subprocess, sys
from importlib.metadata import version
from pathlib import Path
import numpy as np, torch
from safetensors.torch import load_file, save_file
sys.path.insert(0, "training"); sys.path.insert(0, ".")
from train_encoder import read_rows, base_model_dir
from train_judge import build_items
from transformers import AutoTokenizer

DS = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets"); OUT = Path(".gpu")
OUT.mkdir(exist_ok=True)
base = base_model_dir()
tok = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
texts = set()
for f in DS.glob("*.csv"):
    with open(f, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            for k, v in row.items():
                if v and not v.replace(".", "").isdigit():
                    texts.add(v)
rows, _ = read_rows(DS)
items = build_items(rows, np.random.default_rng(0), 10, 3, 1.0)
for it in items:
    texts.add(it.student); texts.update(it.refs)
texts.update(["The bulb lights because the circuit is closed.", "A closed path lets current flow so the bulb is on.",
              "Water evaporates and leaves the salt behind.", "No."])
ids = set(tok.all_special_ids)
texts = sorted(texts)
for i in range(0, len(texts), 2000):
    for seq in tok(texts[i:i + 2000], add_special_tokens=False)["input_ids"]:
        ids.update(seq)
ids = sorted(ids)
print(f"{len(texts)} texts, {len(ids)} of {tok.vocab_size} token ids used")
w = load_file(str(base / "model.safetensors"))
packed = {}
for k, v in w.items():
    if k.endswith("word_embeddings.weight"):
        packed["used_ids"] = torch.tensor(ids, dtype=torch.int32)
        packed["word_rows"] = v[ids].to(torch.float16).contiguous()
        packed["word_shape"] = torch.tensor(list(v.shape), dtype=torch.int64)
        word_key = k
    else:
        packed[k] = v.to(torch.float16).contiguous() if v.is_floating_point() else v
save_file(packed, str(OUT / "packed.safetensors"), metadata={"word_key": word_key})
files = OUT / "base_files"
shutil.rmtree(files, ignore_errors=True)
shutil.copytree(base, files, ignore=shutil.ignore_patterns("model.safetensors", "*.onnx", "onnx", "openvino", "*.bin", "*.h5", "*.ot"))
(OUT / "ds").mkdir(exist_ok=True)
for f in DS.glob("*.csv"):
    with open(f, "rb") as a, gzip.open(OUT / "ds" / (f.name + ".gz"), "wb", compresslevel=9) as b:
        shutil.copyfileobj(a, b)

wheels = OUT / "whl"
shutil.rmtree(wheels, ignore_errors=True)
pins = [f"{n}=={version(n)}" for n in ("pydantic", "pydantic_core", "annotated-types", "typing-inspection", "transformers", "sentence-transformers")]
subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
                "--implementation", "cp", "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
                "--platform", "manylinux2014_x86_64", "-d", str(wheels), *pins], check=True)
size = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
print(f"wrote {OUT}/ ({size / 2**20:.1f} MiB); add '/.gpu/' to .git/info/exclude and carry .gpu")
