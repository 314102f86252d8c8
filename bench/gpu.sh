#!/usr/bin/env bash
# Every GPU check in one run on the lent GPU machine (it has PyTorch 2.11 and transformers but no Rust): the
# binaries built here are carried and linked against that machine's libtorch.
#   carry: target/release/dinoseg, target/fixtures, target/fixtures_eomt, bench/carry (test binaries, copied by
#   `make gpu-carry`)
#   sections: tests backbone eomt (default: all), e.g. `bash bench/gpu.sh eomt`
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
SECTIONS=${*:-tests backbone eomt}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
TORCH_LIB=$(python3 -c "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
export LD_LIBRARY_PATH="$TORCH_LIB:${LD_LIBRARY_PATH:-}"
export DINOSEG_BIN=$PWD/target/release/dinoseg DINOSEG_FIXTURES=$PWD/target/fixtures \
  DINOSEG_EOMT_FIXTURES=$PWD/target/fixtures_eomt PYTHONUNBUFFERED=1
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
quiet() { grep -v "Loading weights"; }
for s in $SECTIONS; do case $s in
tests)
  echo "== CUDA tests"
  for t in bench/carry/*-*; do "$t" --nocapture --test-threads 1 2>&1 | tee -a "$OUT/cuda_tests.txt" | grep -E "cuda|test result"; done ;;
backbone)
  echo "== backbone fp16 vs transformers"
  python3 bench/backbone.py --device cuda --precision fp16 --variants vits16 vitb16 vitl16 convnext_tiny \
    --threads 8 --rounds 40 --warmup 5 --json "$OUT/backbone_fp16.json" 2>&1 | quiet | tee "$OUT/backbone_fp16.txt" | tail -7 ;;
eomt)
  echo "== EoMT frames, fp16"
  for cfg in "384 12 6 S" "768 12 12 B" "1024 24 16 L"; do
    set -- $cfg
    python3 bench/eomt.py --device cuda --precision fp16 --threads 8 --hidden $1 --layers $2 --heads $3 \
      --confident 40 --rounds 30 --warmup 5 --json "$OUT/eomt_$4_fp16.json" 2>&1 | quiet \
      | tee "$OUT/eomt_$4_fp16.txt" | tail -5
  done ;;
esac; done
