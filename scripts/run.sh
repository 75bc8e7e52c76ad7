#!/usr/bin/env bash
# The main job on a fresh machine: installs the dependencies (cached), builds and installs
# airrec, then runs the whole Food–Kitchen pipeline (`airrec run`; extra arguments go to it).
# Data come from $AIRREC_DATA_HOME (or ~/.cache/airrec/data), downloaded when absent.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh

ensure_deps
build_wheel
step "airrec into $CACHE/run-venv"
# Kept between runs: model packages a preset installs (pip --no-deps) stay there.
new_venv "$CACHE/run-venv"

step "airrec run $*"
exec "$CACHE/run-venv/bin/airrec" run "$@"
