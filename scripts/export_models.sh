#!/usr/bin/env bash
# Regenerate the bundled model(s) in models/: train the recipe model (scripts/train_models.sh,
# resumable; skipped when its checkpoint exists) and write a sampling-only float16 copy with
# `structrepdiff export`. Usage:
#   scripts/export_models.sh [DATASET ...]        (default: perov_5 carbon_24 mp_20)
set -euo pipefail
cd "$(dirname "$0")/.."
DATASETS=${*:-perov_5 carbon_24 mp_20}
mkdir -p models
for ds in $DATASETS; do
    ckpt=runs/${ds}_gskip_blockwise/checkpoint.pt
    [ -f "$ckpt" ] || UNET_STEPS=0 scripts/train_models.sh "$ds"
    .venv/bin/structrepdiff export --model "$ckpt" --out "models/${ds}.pt" --dtype float16 --force
done
