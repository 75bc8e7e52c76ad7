"""Hostile bundles: mutate a small valid bundle in every way a file can be wrong, load each copy
in a child process, use it (score, retrieve, explain, nearest intents), and count outcomes.

Outcomes: ``typed`` (an ``airrec.errors.AirrecError``), ``ok`` (loaded, every answer finite and
every id in range), and the failures: ``untyped`` (any other exception), ``wrong`` (a NaN score
or an out-of-range id), ``crash`` (the child died on a signal), ``hang`` (no answer within the
timeout). A run passes when all failures are zero.

Mutations are deterministic given ``--seed``; checksums are recomputed after most of them, so
they reach the parsers instead of stopping at the sha256 check (a hostile bundle comes with a
matching manifest). Classes: byte flips and truncation of every file, hostile ``.npy`` headers,
huge / NaN / inf floats, out-of-range ids, manifest config, dims and index settings, usearch
graph fields (neighbour counts, slots, levels, entry), and files replaced by links to
``/dev/zero`` or out of the bundle, FIFOs and directories.

    python scripts/fuzz_bundles.py --mutations 300 --seed 0 --out counts.json

Children serve many mutations each (a fresh one after every crash or hang), so a run costs
about a millisecond of engine work plus the copy per mutation.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import math
import os
import queue
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

Mutation = Callable[[Path, random.Random], str]


# ---- editing a bundle ------------------------------------------------------------------------


def _manifest(b: Path) -> dict[str, Any]:
    return json.loads((b / "manifest.json").read_text())


def _write_manifest(b: Path, m: dict[str, Any]) -> None:
    (b / "manifest.json").write_text(json.dumps(m))


def _rehash(b: Path, name: str) -> None:
    """Make the manifest agree with `name` again (a hostile bundle has a matching manifest)."""
    m = _manifest(b)
    data = (b / name).read_bytes()
    m["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    _write_manifest(b, m)


def _files(b: Path, suffix: str = "") -> list[str]:
    return sorted(n for n in _manifest(b)["files"] if n.endswith(suffix))


def _npy_data_offset(data: bytes) -> int:
    return 10 + int.from_bytes(data[8:10], "little")


# ---- mutation classes ------------------------------------------------------------------------


def flip_bytes(b: Path, rng: random.Random) -> str:
    name = rng.choice(_files(b))
    data = bytearray((b / name).read_bytes())
    for _ in range(rng.choice([1, 1, 2, 8])):
        at = rng.randrange(len(data))
        data[at] ^= rng.choice([0x01, 0x80, 0xFF, rng.randrange(1, 256)])
    (b / name).write_bytes(bytes(data))
    rehash = rng.random() < 0.85
    if rehash:
        _rehash(b, name)
    return f"flip {name}{' (rehashed)' if rehash else ''}"


def truncate_or_extend(b: Path, rng: random.Random) -> str:
    name = rng.choice(_files(b))
    data = (b / name).read_bytes()
    if rng.random() < 0.5:
        data = data[: rng.randrange(len(data))]
        what = "truncate"
    else:
        data = data + bytes(rng.randrange(1, 64))
        what = "extend"
    (b / name).write_bytes(data)
    _rehash(b, name)
    return f"{what} {name}"


def npy_header(b: Path, rng: random.Random) -> str:
    name = rng.choice(_files(b, ".npy"))
    data = (b / name).read_bytes()
    start = _npy_data_offset(data)
    header = data[10:start].decode("latin1")
    choices = [
        header.replace("'<f4'", "'<f8'").replace("'<i8'", "'<i4'"),
        header.replace("False", "True"),
        header.replace("(", "(99999999999, "),
        header.replace(")", "0)"),
        "{'descr': '|O', 'fortran_order': False, 'shape': (3,), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }",
        "garbage" * rng.randrange(1, 4),
    ]
    new = rng.choice(choices).encode("latin1")
    new = new + b" " * ((64 - (10 + len(new) + 1) % 64) % 64) + b"\n"
    out = data[:8] + len(new).to_bytes(2, "little") + new + data[start:]
    (b / name).write_bytes(out)
    _rehash(b, name)
    return f"npy header {name}"


def float_values(b: Path, rng: random.Random) -> str:
    floats = ("vectors", "compose", "score", "fold_")
    name = rng.choice([n for n in _files(b, ".npy") if any(f in n for f in floats)])
    a = np.load(b / name)
    if a.size == 0:
        return f"floats {name} (empty)"
    # Small, plausible changes too: in a folded array they must be caught by the recomputation.
    value = rng.choice([np.nan, np.inf, -np.inf, 3.4e38, -1e30, 1e15, 2e4, 1e-45, 0.5, -0.25])
    flat = a.reshape(-1)
    flat[rng.randrange(flat.size)] = value
    np.save(b / name, a)
    _rehash(b, name)
    return f"float {value} in {name}"


def int_values(b: Path, rng: random.Random) -> str:
    name = rng.choice([n for n in _files(b, ".npy") if np.load(b / n).dtype.kind in "iu"])
    a = np.load(b / name)
    if a.size == 0:
        return f"ints {name} (empty)"
    info = np.iinfo(a.dtype)
    flat = a.reshape(-1)
    value = rng.choice([-1, -2, int(info.max), int(info.min), int(flat.max()) + 1, 0])
    flat[rng.randrange(flat.size)] = np.array(value).astype(a.dtype)  # wraps like a raw write
    np.save(b / name, a)
    _rehash(b, name)
    return f"int in {name}"


_HOSTILE_NUMBERS: list[Any] = [
    -1, 0, 2**31, 2**62, 2**64, 10**30, 1e308, -1e308, 0.5, True, None, "8", [], {}, [1e308],
]


def manifest_config(b: Path, rng: random.Random) -> str:
    m = _manifest(b)
    key = rng.choice(sorted(m["config"]))  # bounds are checked before config_sha256
    m["config"][key] = rng.choice(_HOSTILE_NUMBERS + [[1.0] * 300, [0.0], [-1.0]])
    _write_manifest(b, m)
    return f"config {key}={m['config'][key]!r:.40}"


def manifest_dims(b: Path, rng: random.Random) -> str:
    m = _manifest(b)
    key = rng.choice(sorted(m["dims"]))
    m["dims"][key] = rng.choice(_HOSTILE_NUMBERS + [m["dims"][key] + 1, m["dims"][key] - 1])
    _write_manifest(b, m)
    return f"dims {key}"


def manifest_other(b: Path, rng: random.Random) -> str:
    m = _manifest(b)
    what = rng.randrange(6)
    if what == 0:
        m.setdefault("index", {})["expansion_search"] = rng.choice(_HOSTILE_NUMBERS)
    elif what == 1:
        m["domains"] = rng.choice([[], ["a"] * 300, [1, 2], None])
    elif what == 2:
        m["files"]["../../etc/passwd"] = {"sha256": "0" * 64, "bytes": 1}
    elif what == 3:
        del m["files"][rng.choice(sorted(m["files"]))]
    elif what == 4:
        m["format_version"] = rng.choice([0, 2, -1, "1", 2**70])
    else:
        (b / "manifest.json").write_bytes((b / "manifest.json").read_bytes()[: rng.randrange(200)])
        return "manifest truncated"
    _write_manifest(b, m)
    return f"manifest field {what}"


def usearch_graph(b: Path, rng: random.Random) -> str:
    """Overwrite a structural field of an index file (the class that crashed usearch)."""
    name = rng.choice(_files(b, ".usearch"))
    data = bytearray((b / name).read_bytes())
    rows = int.from_bytes(data[0:4], "little")
    cols = int.from_bytes(data[4:8], "little")
    graph = 8 + rows * cols + 64
    levels = graph + 40
    nodes = levels + 2 * rows
    field = rng.choice(["header", "level", "node", "matrix"])
    if field == "header" and graph + 40 <= len(data):
        at = graph + 8 * rng.randrange(5)
        value = rng.choice([0, 1, rows, rows + 1, 2**32, 2**63, 2**64 - 1, 1000])
        data[at : at + 8] = value.to_bytes(8, "little")
    elif field == "level" and rows:
        at = levels + 2 * rng.randrange(rows)
        data[at : at + 2] = rng.choice([-1, 1, 5, 32767]).to_bytes(2, "little", signed=True)
    elif field == "node" and nodes + 14 < len(data):
        # a neighbour count or slot somewhere in the node area
        at = nodes + rng.randrange((len(data) - nodes) // 4) * 4
        data[at : at + 4] = rng.choice([rows, rows + 7, 2**31, 2**32 - 1, 64, 1000]).to_bytes(4, "little")
    else:
        new_rows, new_cols = rng.choice([(rows + 1, cols), (rows, cols + 4), (2**32 - 1, 4)])
        data[0:8] = new_rows.to_bytes(4, "little") + new_cols.to_bytes(4, "little")
    (b / name).write_bytes(bytes(data))
    _rehash(b, name)
    return f"usearch {field} {name}"


def special_file(b: Path, rng: random.Random) -> str:
    name = rng.choice(_files(b) + ["manifest.json"])
    target = b / name
    size = target.stat().st_size
    target.unlink()
    kind = rng.choice(["dev-zero", "outside", "fifo", "dir", "dangling"])
    if kind == "dev-zero":
        target.symlink_to("/dev/zero")
    elif kind == "outside":
        outside = b.parent / f"outside-{name}"
        outside.write_bytes(bytes(size))
        target.symlink_to(outside)
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "dir":
        target.mkdir()
    else:
        target.symlink_to(b / "nowhere")
    return f"{kind} as {name}"


MUTATIONS: dict[str, Mutation] = {
    "flip_bytes": flip_bytes,
    "truncate_or_extend": truncate_or_extend,
    "npy_header": npy_header,
    "float_values": float_values,
    "int_values": int_values,
    "manifest_config": manifest_config,
    "manifest_dims": manifest_dims,
    "manifest_other": manifest_other,
    "usearch_graph": usearch_graph,
    "special_file": special_file,
}


# ---- the child: load and use one bundle ------------------------------------------------------


def _use(path: str) -> dict[str, Any]:
    from airrec import Engine
    from airrec.errors import AirrecError

    try:
        engine = Engine.load(path)
        n = engine.n_items
        tree = engine.tree(items=[0, min(1, n - 1), n - 1])
        scores = engine.score(tree, np.arange(n))
        bad: list[str] = []
        if not np.isfinite(scores).all():
            bad.append("non-finite score")
        for d in range(len(engine.domains)):
            ids, sims = engine.retrieve(tree, d, k=5, pool=20)
            if ((ids < 0) | (ids >= n)).any() or not np.isfinite(sims).all():
                bad.append(f"retrieve domain {d}: {ids} {sims}")
        engine.explain(tree, 0)
        leaves, sims = engine.nearest_intents(np.ones(engine.dim) / math.sqrt(engine.dim), 3)
        if ((leaves < 0) | (leaves >= engine.n_nodes)).any() or not np.isfinite(sims).all():
            bad.append(f"nearest_intents: {leaves} {sims}")
        return {"outcome": "wrong", "detail": "; ".join(bad)} if bad else {"outcome": "ok"}
    except AirrecError as e:
        return {"outcome": "typed", "detail": type(e).__name__}
    except Exception as e:
        return {"outcome": "untyped", "detail": f"{type(e).__name__}: {e}"[:300]}


def worker() -> None:
    for line in sys.stdin:
        print(json.dumps(_use(line.strip())), flush=True)


class Child:
    """A worker process fed bundle paths one at a time, with a per-bundle timeout."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, bufsize=1,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def run(self, path: Path, timeout: float) -> dict[str, Any]:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(f"{path}\n")
            self.proc.stdin.flush()
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            return {"outcome": "hang", "detail": f"no answer in {timeout} s"}
        except BrokenPipeError:
            line = None
        if line is None:
            code = self.proc.wait()
            return {"outcome": "crash", "detail": f"exit code {code}"}
        return json.loads(line)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


def base_bundle(out: Path) -> Path:
    from airrec.synthetic import make_synthetic_bundle

    return make_synthetic_bundle(
        out, n_nodes=40, n_items=24, dim=8, n_heads=2, depth=3, paths_per_item=2, seed=3,
    )


def run(n: int, seed: int, timeout: float, workdir: Path) -> dict[str, Any]:
    rng = random.Random(seed)
    base = base_bundle(workdir / "base")
    counts: dict[str, collections.Counter[str]] = {k: collections.Counter() for k in MUTATIONS}
    failures: list[dict[str, Any]] = []
    child = Child()
    started = time.perf_counter()
    for i in range(n):
        kind = list(MUTATIONS)[i % len(MUTATIONS)]
        case_dir = workdir / "case"
        if case_dir.exists():
            shutil.rmtree(case_dir)
        bundle = case_dir / "bundle"
        shutil.copytree(base, bundle)
        case_rng = random.Random(rng.getrandbits(64))
        what = MUTATIONS[kind](bundle, case_rng)
        result = child.run(bundle, timeout)
        counts[kind][result["outcome"]] += 1
        if result["outcome"] in ("untyped", "wrong", "crash", "hang"):
            failures.append({"case": i, "mutation": what, **result})
            if result["outcome"] in ("crash", "hang"):
                child = Child()
    child.kill()
    total = collections.Counter[str]()
    for c in counts.values():
        total.update(c)
    return {
        "mutations": n,
        "seed": seed,
        "seconds": round(time.perf_counter() - started, 1),
        "outcomes": {k: total.get(k, 0) for k in ("typed", "ok", "untyped", "wrong", "crash", "hang")},
        "by_class": {k: dict(v) for k, v in counts.items()},
        "failures": failures[:50],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mutations", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=20.0, help="seconds per bundle before it counts as a hang")
    p.add_argument("--out", type=Path, help="write the counts here (JSON)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker()
        return 0
    with tempfile.TemporaryDirectory(prefix="airrec-fuzz-") as tmp:
        report = run(args.mutations, args.seed, args.timeout, Path(tmp))
    if args.out:
        from airrec._files import write_json_atomic

        write_json_atomic(args.out, report)
    print(json.dumps({k: report[k] for k in ("mutations", "seconds", "outcomes")}))
    failed = sum(report["outcomes"][k] for k in ("untyped", "wrong", "crash", "hang"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
