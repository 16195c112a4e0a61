#!/usr/bin/env bash
# What to run the first minutes a GPU is lent (at most 8 minutes; each part has its own time
# limit, so one slow part cannot eat the rest). Writes bench/results/gpu_check/ and a log; the
# figures go to bench/RESULTS.md with the device named.
#   1. pytest -m gpu: the GPU tests CI cannot run (bf16 training, compiled decode, sync-free
#      sampling, FlexAttention's prior and its gradients, encoders on the GPU).
#   2. The base preset's training step at 18k tokens: ms/step, peak memory, MFU, top kernels.
#   3. A 120 s base song, eager versus compiled, with graph breaks and recompiles logged.
#   4. ZeRO-1 versus ZeRO-2 over every GPU present.
# Usage: bash bench/gpu_check.sh   (from the repository root, after `make`)
# On a lent machine with no package index (the device tool's): `bash bench/gpu_prepare.sh` here
# first, carry .whl and .gpu_fixtures, and run `PY=python3 bash bench/gpu_check.sh` there: it
# installs the wheels and the project, and the tests read the small dataset built here (no Ray there).
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PY=$(command -v "$PY")
OUT=${OUT_DIR:-bench/results/gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 DS_ACCELERATOR=cuda
if [ -d .whl ] && ! $PY -c "import deepspeed, webdataset, soundfile" 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile .whl/*.whl \
    && $PY -m pip install -q --no-index --no-deps --no-build-isolation -e . || { echo "gpu_check: install failed"; exit 1; }
fi
[ -d .gpu_fixtures/small_data ] && export AUTOSONG_SMALL_DATA=$PWD/.gpu_fixtures/small_data
GPUS=$($PY -c "import torch; print(torch.cuda.device_count())")
if [ "$GPUS" -lt 1 ]; then echo "gpu_check: no CUDA device"; exit 1; fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/device.txt"

part() {  # part NAME SECONDS COMMAND...: run it under a time limit, log it, go on whatever happens
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  echo "=== $name (limit ${limit}s)"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "=== $name: exit $rc in $((SECONDS - t0)) s"
  tail -n 25 "$OUT/$name.log"
}

part pytest_gpu 140 $PY -m pytest -m gpu -q -p no:cacheprovider
part base_step 90 $PY bench/gpu_step.py --config configs/model/base.yaml --tokens 18000 --steps 6 \
     --out "$OUT/base_step_zero1.json"
TORCH_LOGS=graph_breaks,recompiles part song_120s 150 $PY bench/generate.py --config configs/model/base.yaml \
     --song-seconds 120 --device cuda --dtype bf16 --only-compiled --out "$OUT/song_120s.json"
for z in 1 2; do
  part "zero${z}_x${GPUS}" 45 "$(dirname "$PY")/deepspeed" --num_gpus "$GPUS" bench/gpu_step.py --config configs/model/base.yaml \
       --deepspeed "configs/deepspeed/zero${z}.json" --tokens 18000 --steps 4 --out "$OUT/zero${z}_x${GPUS}.json"
done
echo "gpu_check: done in $SECONDS s; results in $OUT"
tar czf "$OUT.tgz" -C "$(dirname "$OUT")" "$(basename "$OUT")"  # one file: the device tool brings back 8 at most
