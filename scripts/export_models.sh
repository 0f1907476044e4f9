#!/usr/bin/env bash
# Regenerate the bundled model(s) in src/structrepdiff/models/ (package data): train the
# recipe models (scripts/train_models.sh,
# resumable; skipped when both exist) and write one sampling-only float16 file per dataset with
# `structrepdiff export`: the conditional structure model with its composition model and its
# space-group prior (fitted on the training split, issue 26) bundled, so `generate` samples
# compositions and groups without --formula and does CSP inside the prior's groups. Perov-5
# bundles a second prior, fitted at the evaluator's 0.1 A, that draws the groups of sampled
# compositions (one prior per use; BENCHMARKS "Issue 26, part 3"). Every model carries the
# template crystals of its training split (--templates), so decoding needs no data directory.
# Usage:
#   scripts/export_models.sh [DATASET ...]        (default: perov_5 carbon_24 mp_20)
set -euo pipefail
cd "$(dirname "$0")/.."
DATASETS=${*:-perov_5 carbon_24 mp_20}
mkdir -p src/structrepdiff/models
for ds in $DATASETS; do
    ckpt=runs/${ds}_cond/checkpoint.pt
    comp=runs/${ds}_composition.pt
    [ -f "$ckpt" ] && [ -f "$comp" ] || scripts/train_models.sh "$ds"
    extra=()
    [ "$ds" = perov_5 ] && extra=(--generation-prior auto)
    .venv/bin/structrepdiff export --model "$ckpt" --composition-model "$comp" \
        --space-group-prior auto "${extra[@]}" --templates \
        --out "src/structrepdiff/models/${ds}.pt" --dtype float16 --force
done
