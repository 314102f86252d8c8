#!/usr/bin/env bash
# Carry: target/release/dinoseg (this change), bench/carry/dinoseg_old (the binary to compare with, built from an
# older commit), target/fixtures*; run on the GPU machine: `bash bench/gpu_ab.sh`.
# A/B: EoMT frames with the binary before issue 11 (6114a06) and after, interleaved, fp16, H200.
set -u
TORCH_LIB=$(python3 -c "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
export LD_LIBRARY_PATH="$TORCH_LIB:${LD_LIBRARY_PATH:-}" PYTHONUNBUFFERED=1
chmod +x bench/carry/dinoseg_old
for round in 1 2; do
  for cfg in "384 12 6 S" "1024 24 16 L"; do
    set -- $cfg
    for side in old new; do
      bin=$PWD/target/release/dinoseg; [ $side = old ] && bin=$PWD/bench/carry/dinoseg_old
      echo "== round $round $4 $side"
      DINOSEG_BIN=$bin python3 bench/eomt.py --device cuda --precision fp16 --threads 8 --hidden $1 --layers $2 \
        --heads $3 --confident 40 --rounds 30 --warmup 5 --ours-only --json "${OUT:-/tmp/out}/ab_${round}_$4_$side.json" 2>&1 \
        | grep -v "Loading weights" | grep "dinoseg |"
    done
  done
done
