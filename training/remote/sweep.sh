#!/bin/bash
# Train on a GPU machine that cannot install the bundled base package (see README.md here).
# Prepared here with `python training/remote/pack.py` (writes .gpu/, git-ignored via .git/info/exclude);
# run there from the repository root with .gpu carried:  OUT=<results dir> bash training/remote/sweep.sh
# Each config trains on 80% of the training questions (--dev-fraction 0.2, seed 0) and is scored on the
# held-out 20%; the best by mean dev score is retrained on all training rows and scored on the test splits.
# KIND=judge (default) or KIND=encoder; CONFIGS overrides the list; BUDGET is the seconds to stay within.
set -u
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
KIND=${KIND:-judge}; BUDGET=${BUDGET:-470}; LOG=$OUT/log.txt
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl >>"$LOG" 2>&1 || { echo pip failed; tail "$LOG"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD
python3 training/remote/unpack.py /tmp/site >>"$LOG" 2>&1 || { echo unpack failed; tail -20 "$LOG"; exit 1; }
if [ "$KIND" = judge ]; then
  DEFAULT="v1=--layers 2 --epochs 1 --lr 2e-4;l6e2=--layers 6 --epochs 2 --lr 5e-5;l4e2=--layers 4 --epochs 2 --lr 1e-4;l6e3=--layers 6 --epochs 3 --lr 3e-5"
  TRAIN="training/train_judge.py"; COMMON="--device cuda --bucket-tokens 16384 --threads 8"
  DEV_EVAL="training/evaluate_judge.py /tmp/ds --dev-fraction 0.2 --device cuda --threads 8"
  TEST_EVAL="training/evaluate_judge.py /tmp/ds --device cuda --threads 8"
  WEIGHTS=judge.safetensors; META=grader_judge.json
else
  DEFAULT="v1=--layers 2 --epochs 2 --lr 5e-5;l6e2=--layers 6 --epochs 2 --lr 2e-5;l4e3=--layers 4 --epochs 3 --lr 3e-5"
  TRAIN="training/train_encoder.py"; COMMON="--device cuda --bucket-tokens 8192 --threads 8"
  DEV_EVAL="training/evaluate_encoder.py /tmp/ds --dev-fraction 0.2 --only-finetuned"
  TEST_EVAL="training/evaluate_encoder.py /tmp/ds --limit 0"
  WEIGHTS=delta.safetensors; META=grader_delta.json
fi
declare -A CFG; ORDER=()
IFS=';' read -ra entries <<< "${CONFIGS:-$DEFAULT}"
for e in "${entries[@]}"; do CFG[${e%%=*}]="${e#*=}"; ORDER+=("${e%%=*}"); done
for name in "${ORDER[@]}"; do
  if (( SECONDS > BUDGET / 2 )); then echo "skip $name (t=${SECONDS}s)" | tee -a "$LOG"; continue; fi
  echo "== dev $name: ${CFG[$name]} (t=${SECONDS}s)" | tee -a "$LOG"
  timeout 200 python3 $TRAIN /tmp/ds --out /tmp/dev_$name ${CFG[$name]} $COMMON --dev-fraction 0.2 >>"$LOG" 2>&1 || { echo "train $name failed"; tail -30 "$LOG"; continue; }
  timeout 150 python3 $DEV_EVAL --model /tmp/dev_$name --json "$OUT/dev_$name.json" >>"$LOG" 2>&1 || { echo "eval $name failed"; tail -30 "$LOG"; continue; }
done
best=$(python3 training/remote/best.py "$OUT")
echo "best on dev: $best (t=${SECONDS}s)" | tee -a "$LOG"
[ -z "$best" ] && exit 1
left=$(( BUDGET - SECONDS - 60 )); (( left < 30 )) && left=30
timeout $left python3 $TRAIN /tmp/ds --out /tmp/final ${CFG[$best]} $COMMON >>"$LOG" 2>&1 || { echo final training failed; tail -30 "$LOG"; exit 1; }
timeout 100 python3 $TEST_EVAL --model /tmp/final --json "$OUT/test_final.json" >>"$LOG" 2>&1 || { echo "final test eval failed or cut"; tail -20 "$LOG"; }
cp /tmp/final/$META "$OUT/"
(cd /tmp/final && split -b 15M $WEIGHTS "$OUT/$WEIGHTS.part.")
echo "done t=${SECONDS}s; rebuild locally: python training/remote/finish.py <fetched dir> models/<name>"
