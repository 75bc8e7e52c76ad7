#!/usr/bin/env bash
# Runs every test of airrec the way a user gets it: the Rust core's own tests, then the Python
# suite against the *built wheel* installed into a fresh virtual environment (so a packaging
# mistake fails here), plus the stub check and a smoke run of the benchmark suite.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/_env.sh

ensure_deps

step "linters (rustfmt, clippy, ruff, mypy --strict)"
cargo fmt --check
cargo clippy -q --all-targets -- -D warnings
"$DEPS/bin/ruff" check python tests scripts benches
"$DEPS/bin/mypy" --config-file pyproject.toml

step "cargo test (airrec-core)"
cargo test -p airrec-core -q 2>&1 | tail -n 30

step "Rust embedding example (cargo run --example serve)"
cargo run -q -p airrec-core --example serve > "$CACHE/example-serve.log" 2>&1 || { cat "$CACHE/example-serve.log"; exit 1; }
tail -n 3 "$CACHE/example-serve.log"

build_wheel

step "fresh virtual environment with the wheel"
VENV=$(mktemp -d)/venv
trap 'rm -rf "$(dirname "$VENV")"' EXIT
new_venv "$VENV"

# Tests must import the installed wheel, never the source tree.
cd "$(dirname "$VENV")"
"$VENV/bin/python" -c 'import airrec; assert "site-packages" in airrec.__file__, airrec.__file__; print("airrec", airrec.__version__, "from", airrec.__file__)'

step "stub check (mypy.stubtest against the compiled module)"
"$VENV/bin/python" -m mypy.stubtest airrec._airrec

step "pytest"
"$VENV/bin/python" -m pytest "$ROOT/tests" -q -p no:cacheprovider --rootdir "$ROOT" -c "$ROOT/pyproject.toml"

step "benchmark suite smoke run (pytest benches/ --benchmark-disable)"
"$VENV/bin/python" -m pytest "$ROOT/benches" -q -p no:cacheprovider --rootdir "$ROOT" -c "$ROOT/pyproject.toml" --benchmark-disable
