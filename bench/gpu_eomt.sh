#!/usr/bin/env bash
# EoMT GPU checks in one run on the lent GPU machine (PyTorch 2.11 and transformers there, no Rust): CUDA parity
# of the tiny fixtures, then EoMT frame latency (forward + semantic + panoptic post-processing) for ViT-S/B/L at
# 640x640, fp16, ours vs transformers.
#   carry: target/release/dinoseg, target/fixtures, target/fixtures_eomt, bench/carry
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
TORCH_LIB=$(python3 -c "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
export LD_LIBRARY_PATH="$TORCH_LIB:${LD_LIBRARY_PATH:-}"
export DINOSEG_BIN=$PWD/target/release/dinoseg DINOSEG_FIXTURES=$PWD/target/fixtures \
  DINOSEG_EOMT_FIXTURES=$PWD/target/fixtures_eomt PYTHONUNBUFFERED=1
echo "== CUDA tests"
for t in bench/carry/precision-*; do "$t" --nocapture --test-threads 1 2>&1 | tee -a "$OUT/cuda_tests.txt"; done
echo "== EoMT frames, fp16"
for cfg in "384 12 6 S" "768 12 12 B" "1024 24 16 L"; do
  set -- $cfg
  python3 bench/eomt.py --device cuda --precision fp16 --threads 8 --hidden $1 --layers $2 --heads $3 \
    --confident 40 --rounds 30 --warmup 5 --json "$OUT/eomt_$4_fp16.json" 2>&1 | grep -v "Loading weights" \
    | tee "$OUT/eomt_$4_fp16.txt" | tail -6
done
