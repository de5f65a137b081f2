"""Turn what training/remote/sweep.sh fetched into a model directory for models/.

    python training/remote/finish.py FETCHED_DIR models/NAME

The remote run trained on the base rebuilt from fp16 (unpack.py), so its delta is relative to that
rounded base. This rebases it onto the real fp32 base (delta' = rounded base + delta - base, stored
fp16 like every shipped delta) and records the real base's sha256, so the artifact loads and passes
the base check like one trained here. The difference is at the fp16 rounding level of the weights.
"""
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from train_encoder import base_model_dir, sha256_file  # noqa: E402

src, out = Path(sys.argv[1]), Path(sys.argv[2])
meta_name = "grader_judge.json" if (src / "grader_judge.json").is_file() else "grader_delta.json"
meta = json.loads((src / meta_name).read_text())
weights_name = meta.get("weights_file") or meta.get("delta_file")
parts = sorted(src.glob(weights_name + ".part.*"))
if not parts:
    raise SystemExit(f"{src}: no {weights_name}.part.* files")
out.mkdir(parents=True, exist_ok=True)
joined = out / weights_name
with open(joined, "wb") as fh:
    for p in parts:
        fh.write(p.read_bytes())
tensors = load_file(str(joined))
base_path = base_model_dir() / "model.safetensors"
base = load_file(str(base_path))
fixed = {}
for key, value in tensors.items():
    name = key[len("delta."):] if key.startswith("delta.") else key
    if name in base and (key.startswith("delta.") or meta_name == "grader_delta.json"):
        exact = base[name].float()
        rounded = exact.to(torch.float16).float()
        fixed[key] = (rounded + value.float() - exact).to(torch.float16).contiguous()
    else:
        fixed[key] = value
save_file(fixed, str(joined), metadata={"format": meta["format"]})
meta["base"]["weights_sha256"] = sha256_file(base_path)
if "weights_sha256" in meta:
    meta["weights_sha256"] = sha256_file(joined)
meta.setdefault("training", {})["remote"] = (
    "trained on a GPU machine with the base rebuilt from fp16 (training/remote/); delta rebased onto the "
    "fp32 base by training/remote/finish.py"
)
(out / meta_name).write_text(json.dumps(meta, indent=2) + "\n")
print(f"wrote {out}: {len(fixed)} tensors, base sha256 {meta['base']['weights_sha256'][:12]}")
