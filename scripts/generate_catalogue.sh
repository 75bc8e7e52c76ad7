#!/usr/bin/env bash
# Grows the committed intents artifact to the whole Food–Kitchen catalogue, shard by shard.
#
# Each shard is a range of global item ids; only items with no line in the artifact yet are
# generated (--missing-from), and the artifact is rewritten after every shard with the old
# lines kept (--keep-existing). Kill it at any point: the SQLite cache keeps every finished
# answer, a re-run skips them, and the artifact on disk is always a complete, valid file, so
# committing it after any shard loses nothing. Per-shard summaries (items/s, tokens, quality
# report) go to benches/results/generate/catalogue/.
#
#   bash scripts/generate_catalogue.sh [SHARD_SIZE] [FIRST_ID] [LAST_ID]
#
# Environment: AIRREC_DATA_HOME (the data directory), AIRREC_GEN_CACHE (the SQLite cache,
# default ~/.cache/airrec/catalogue-qwen.sqlite), WORKERS (default: one per core),
# AIRREC_GEN_PYTHON (a python with airrec installed; default: build the wheel as run.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh
ensure_deps
if [ -z "${AIRREC_GEN_PYTHON:-}" ]; then
    build_wheel
    new_venv "$CACHE/run-venv"
fi
PY=${AIRREC_GEN_PYTHON:-$CACHE/run-venv/bin/python}

SIZE=${1:-2000}
FIRST=${2:-0}
LAST=${3:-$("$PY" -c 'import os; from airrec.data import load_food_kitchen
print(len(load_food_kitchen(os.environ.get("AIRREC_DATA_HOME")).items.texts))')}
ARTIFACT=benches/data/intents-food-kitchen-qwen2.5-coder-0.5b.jsonl.gz
GEN_CACHE=${AIRREC_GEN_CACHE:-$HOME/.cache/airrec/catalogue-qwen.sqlite}
REPORTS=benches/results/generate/catalogue
mkdir -p "$REPORTS" "$(dirname "$GEN_CACHE")"

for ((lo = FIRST; lo < LAST; lo += SIZE)); do
    hi=$((lo + SIZE < LAST ? lo + SIZE : LAST))
    step "shard $lo:$hi"
    "$PY" -m airrec generate \
        --model qwen2.5-coder-0.5b --allow-install ${AIRREC_DATA_HOME:+--data-home "$AIRREC_DATA_HOME"} \
        --items "$lo:$hi" --missing-from "$ARTIFACT" \
        --workers "${WORKERS:-$(nproc)}" --threads 1 --parallel 64 --no-progress \
        --cache "$GEN_CACHE" --report "$REPORTS/shard-$lo-$hi.json" \
        --export "$ARTIFACT" --keep-existing
done
