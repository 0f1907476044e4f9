#!/usr/bin/env bash
# Featurise the val (training) and test splits of every dataset with one preset, for training
# (`train --features`) and for the Fréchet proxy floor (studies/diffusion_quality.py).
# Skips files that already exist. Usage:
#   scripts/featurize_splits.sh [PRESET] [OUTDIR]      (defaults: small runs/features)
# Data: $STRUCTREPDIFF_DATA or ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
PRESET=${1:-small}
OUT=${2:-runs/features}
THREADS=${THREADS:-1}
mkdir -p "$OUT"
for ds in perov_5 carbon_24 mp_20; do
    for split in val test; do
        f="$OUT/${ds}_${split}_${PRESET}.npz"
        [ -f "$f" ] && { echo "have $f"; continue; }
        OMP_NUM_THREADS=$THREADS .venv/bin/structrepdiff featurize --dataset "$ds" \
            --split "$split" --preset "$PRESET" --dtype float32 --out "$f" --no-progress
    done
done
