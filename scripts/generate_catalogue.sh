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
#   bash scripts/generate_catalogue.sh --regenerate SPLITS SHARDS [FIRST_SHARD]
#
# The second form regenerates, with today's prompt, the items of some splits' histories
# and targets that already have lines (e.g. test,valid, made with an older prompt), in
# SHARDS hash shards (--shard i/SHARDS); the artifact is rewritten after each, the new
# answers replacing the old lines.
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

ARTIFACT=benches/data/intents-food-kitchen-qwen2.5-coder-0.5b.jsonl.gz
GEN_CACHE=${AIRREC_GEN_CACHE:-$HOME/.cache/airrec/catalogue-qwen.sqlite}
REPORTS=benches/results/generate/catalogue
mkdir -p "$REPORTS" "$(dirname "$GEN_CACHE")"
COMMON=(--model qwen2.5-coder-0.5b --allow-install ${AIRREC_DATA_HOME:+--data-home "$AIRREC_DATA_HOME"}
        --workers "${WORKERS:-$(nproc)}" --threads 1 --parallel 64 --no-progress
        --cache "$GEN_CACHE" --export "$ARTIFACT" --keep-existing)

if [ "${1:-}" = "--regenerate" ]; then
    SPLITS=$2 SHARDS=$3
    for ((i = ${4:-0}; i < SHARDS; i++)); do
        step "regenerate $SPLITS, shard $i/$SHARDS"
        "$PY" -m airrec generate "${COMMON[@]}" --splits "$SPLITS" --shard "$i/$SHARDS" \
            --report "$REPORTS/regen-${SPLITS//,/-}-$i-of-$SHARDS.json"
    done
    exit 0
fi

SIZE=${1:-2000}
FIRST=${2:-0}
LAST=${3:-$("$PY" -c 'import os; from airrec.data import load_food_kitchen
print(len(load_food_kitchen(os.environ.get("AIRREC_DATA_HOME")).items.texts))')}
for ((lo = FIRST; lo < LAST; lo += SIZE)); do
    hi=$((lo + SIZE < LAST ? lo + SIZE : LAST))
    step "shard $lo:$hi"
    "$PY" -m airrec generate "${COMMON[@]}" --item-range "$lo:$hi" --missing-from "$ARTIFACT" \
        --report "$REPORTS/shard-$lo-$hi.json"
done
