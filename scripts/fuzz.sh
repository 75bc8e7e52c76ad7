#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz / libFuzzer, address sanitizer) of the bundle parsers:
#   npy         arbitrary bytes as a .npy file of every dtype
#   index_file  a valid usearch file patched at fuzzer-chosen offsets -> validate, view, search
#   bundle      one file of a small bundle (or its manifest) replaced or patched, checksums
#               re-recorded -> Engine::load, then scores, explain, retrieve
# Any crash, sanitizer report, panic, timeout or out-of-memory stops the run with the input
# saved under rust/airrec-core/fuzz/artifacts/. Counts go to benches/results/fuzz.json.
#
#   bash scripts/fuzz.sh [RUNS_PER_TARGET] [TARGETS...]     (default 100000; all three)
#
# Needs the nightly toolchain; installs cargo-fuzz once (cached in ~/.cargo/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-100000}
shift || true
TARGETS=("${@:-npy index_file bundle}")
read -r -a TARGETS <<< "${TARGETS[*]}"
command -v cargo-fuzz > /dev/null || cargo install cargo-fuzz --locked
cd rust/airrec-core
OUT=../../benches/results/fuzz.json
LOGS=$(mktemp -d)
for t in "${TARGETS[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    echo "==> fuzz $t ($RUNS runs)"
    start=$(date +%s)
    cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- -runs="$RUNS" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 > "$LOGS/$t.log" 2>&1 || { tail -n 40 "$LOGS/$t.log"; exit 1; }
    echo "$t $(( $(date +%s) - start ))" >> "$LOGS/seconds"
    grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|Done)" "$LOGS/$t.log" || true
done
python3 - "$LOGS" "$OUT" "${TARGETS[@]}" <<'PY'
import json, pathlib, re, sys, time
logs, out, targets = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3:]
seconds = dict(line.split() for line in (logs / "seconds").read_text().splitlines())
result = json.loads(out.read_text()) if out.exists() else {}
for t in targets:
    text = (logs / f"{t}.log").read_text()
    stat = lambda k: int(re.findall(rf"stat::{k}:\s+(\d+)", text)[-1])
    cov = re.findall(r"cov: (\d+) ft: (\d+)", text)
    result[t] = {
        "executions": stat("number_of_executed_units"), "crashes": 0,
        "coverage_edges": int(cov[-1][0]) if cov else None, "peak_rss_mb": stat("peak_rss_mb"),
        "seconds": int(seconds[t]), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
out.write_text(json.dumps(result, indent=2) + "\n")
print(json.dumps(result, indent=1))
PY
