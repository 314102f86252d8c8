#!/usr/bin/env bash
# Every GPU check of the foundation in one run on the lent GPU machine (it has PyTorch 2.11 and transformers but
# no Rust): the binaries built here are carried and linked against that machine's libtorch.
#   carry: target/release/dinoseg, target/fixtures, bench/carry (test binaries copied by `make gpu-carry`)
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
TORCH_LIB=$(python3 -c "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
export LD_LIBRARY_PATH="$TORCH_LIB:${LD_LIBRARY_PATH:-}"
export DINOSEG_BIN=$PWD/target/release/dinoseg DINOSEG_FIXTURES=$PWD/target/fixtures PYTHONUNBUFFERED=1
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
echo "== CUDA tests"
for t in bench/carry/precision-*; do "$t" --nocapture --test-threads 1 2>&1 | tee -a "$OUT/cuda_tests.txt"; done
echo "== demo"
$DINOSEG_BIN demo --variant vits16 --device cuda --precision fp16 --iters 20 | tee "$OUT/demo.txt"
echo "== backbone fp16 and fp32 vs transformers"
python3 bench/backbone.py --device cuda --precision fp16 --variants vits16 vitb16 vitl16 convnext_tiny \
  --threads 8 --rounds 40 --warmup 5 --json "$OUT/gpu_fp16.json" 2>&1 | grep -v "Loading weights" | tee "$OUT/gpu_fp16.txt"
python3 bench/backbone.py --device cuda --precision fp32 --variants vits16 vitl16 \
  --threads 8 --rounds 20 --warmup 3 --json "$OUT/gpu_fp32.json" 2>&1 | grep -v "Loading weights" | tee "$OUT/gpu_fp32.txt"
