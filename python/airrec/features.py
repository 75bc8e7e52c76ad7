"""AIR features at scale: the engine's score and intent vector for (user, candidate) pairs,
written as Parquet, to train or backfill a host ranking model.

Inputs are two Parquet files (or directories of them):

* **histories**, one row per event: ``user`` (int64), ``item`` (int64), optionally
  ``behaviour`` (int, default 0) and ``timestamp`` (number, default the event's position in
  its user's rows); a user's events in file order;
* **candidates**, one row per pair: ``user``, ``candidate`` (int64).

The output directory holds ``part-*.parquet`` files with ``user``, ``candidate``, ``score``
(float32) and ``intent`` (``fixed_size_list<float32>[dim]``): exactly
:meth:`airrec.Engine.score_batch` and :meth:`~airrec.Engine.intent_vectors_batch` on the same
inputs, one row per candidate row (a user without history gets the engine's cold answer).

The work is the same with or without Ray: users are grouped on the driver (one row per user
with its events and candidates), cut into batches of ``batch_users``, and each batch goes
through :class:`FeatureWorker` (the bundle loaded once per worker, memory-mapped). Locally the
worker runs in this process; with ``ray_address`` it runs in a pool of Ray actors over a Ray
Dataset, which writes the Parquet files. The output directory is written beside its final
name and renamed when complete, so a reader never sees half of it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from airrec.engine import Engine, Histories
from airrec.errors import InputError, InputTypeError

__all__ = ["FeatureReport", "FeatureWorker", "compute_features", "group_requests", "read_features"]

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class FeatureReport:
    out_dir: Path
    users: int
    rows: int
    dim: int
    seconds: float
    runner: str

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def _read_table(path: str | os.PathLike[str], what: str) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(Path(path))
    except FileNotFoundError:
        raise InputError(f"{what}: {path} does not exist") from None
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"{what}: {path} is not a readable Parquet file ({e})") from None


def _int_column(table: Any, name: str, what: str, *, default: int | None = None) -> IntArray:
    import pyarrow as pa

    if name not in table.column_names:
        if default is None:
            raise InputError(f"{what}: no column {name!r} (columns: {', '.join(table.column_names)})")
        return np.full(table.num_rows, default, dtype=np.int64)
    col = table.column(name)
    if not pa.types.is_integer(col.type):
        raise InputTypeError(f"{what}: column {name!r} must hold integers, not {col.type}")
    if col.null_count:
        raise InputError(f"{what}: column {name!r} has {col.null_count} missing values")
    values: IntArray = np.asarray(col.to_numpy(), dtype=np.int64)
    if values.size and values.min() < 0:
        raise InputError(f"{what}: column {name!r} has negative ids")
    return values


def _times(table: Any, positions: IntArray) -> npt.NDArray[np.float64]:
    import pyarrow as pa

    if "timestamp" not in table.column_names:
        return positions.astype(np.float64)
    col = table.column("timestamp")
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        raise InputTypeError(f"histories: column 'timestamp' must be numeric, not {col.type}")
    values: npt.NDArray[np.float64] = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
    if not np.isfinite(values).all():
        raise InputError("histories: column 'timestamp' has missing or non-finite values")
    return values


def group_requests(histories: str | os.PathLike[str], candidates: str | os.PathLike[str], n_items: int) -> Any:
    """One row per user that has candidates: ``user``, ``items``, ``behaviours``,
    ``timestamps``, ``candidates`` (list columns), users in ascending order. Ids are checked
    against ``n_items`` here, on the driver, so a bad file fails before any work starts."""
    import pyarrow as pa

    hist, cand = _read_table(histories, "histories"), _read_table(candidates, "candidates")
    h_user = _int_column(hist, "user", "histories")
    h_item = _int_column(hist, "item", "histories")
    h_beh = _int_column(hist, "behaviour", "histories", default=0)
    c_user = _int_column(cand, "user", "candidates")
    c_item = _int_column(cand, "candidate", "candidates")
    for what, ids in (("histories: item", h_item), ("candidates: candidate", c_item)):
        if ids.size and ids.max() >= n_items:
            raise InputError(f"{what} {int(ids.max())} is not in the bundle (ids 0..{n_items - 1})")
    h_order = np.argsort(h_user, kind="stable")
    c_order = np.argsort(c_user, kind="stable")
    h_user, c_user = h_user[h_order], c_user[c_order]
    users = np.unique(c_user)
    # Each user's slice of the sorted events / candidates.
    h_lo, h_hi = np.searchsorted(h_user, users, "left"), np.searchsorted(h_user, users, "right")
    c_lo, c_hi = np.searchsorted(c_user, users, "left"), np.searchsorted(c_user, users, "right")
    position = np.arange(h_user.size) - np.searchsorted(h_user, h_user, "left")
    times = _times(hist.take(pa.array(h_order)), position)

    def lists(values: Any, lo: IntArray, hi: IntArray) -> Any:
        # Users are ascending and so are the sorted rows: the rows of the kept users, in
        # order, are exactly those whose user is kept.
        offsets = np.zeros(lo.size + 1, dtype=np.int64)
        np.cumsum(hi - lo, out=offsets[1:])
        return pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values))

    kept = np.isin(h_user, users)
    return pa.table({
        "user": pa.array(users),
        "items": lists(h_item[h_order][kept], h_lo, h_hi),
        "behaviours": lists(h_beh[h_order][kept], h_lo, h_hi),
        "timestamps": lists(times[kept], h_lo, h_hi),
        "candidates": lists(c_item[c_order], c_lo, c_hi),
    })


class FeatureWorker:
    """Scores batches of grouped requests with one engine (loaded once, memory-mapped).

    Called with a ``pyarrow.Table`` of :func:`group_requests` rows; returns the feature rows
    of those users as a ``pyarrow.Table``. Ray's ``map_batches`` builds one per actor.
    """

    def __init__(self, bundle: str | os.PathLike[str] | Engine, n_threads: int | None = None) -> None:
        # An engine already loaded (the local runner's, validated once on the driver) is used
        # as is; a path (each Ray actor's) is loaded here.
        self.engine = bundle if isinstance(bundle, Engine) else Engine.load(bundle)
        self.n_threads = n_threads

    #: Padded (user, candidate) cells per engine call: a batch is cut into runs of users whose
    #: rectangle ``users × widest row`` stays under this, so one user with a huge candidate
    #: list costs its own rows, not ``batch_users`` times them.
    max_cells = 65_536

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        if batch.num_rows == 0:
            return _empty(self.engine.dim)
        h_off = batch.column("items").combine_chunks().offsets.to_numpy().astype(np.int64)
        h_off -= h_off[0]
        flat = [batch.column(k).combine_chunks().flatten().to_numpy() for k in ("items", "behaviours", "timestamps")]
        cands = batch.column("candidates").combine_chunks()
        c_off = cands.offsets.to_numpy().astype(np.int64)
        c_off -= c_off[0]
        values = cands.flatten().to_numpy().astype(np.int64)
        counts = np.diff(c_off)
        users = batch.column("user").to_numpy()
        parts = []
        lo = 0
        while lo < users.size:
            hi, width = lo + 1, int(counts[lo])
            while hi < users.size and (hi + 1 - lo) * max(width, int(counts[hi])) <= self.max_cells:
                width = max(width, int(counts[hi]))
                hi += 1
            ev = slice(int(h_off[lo]), int(h_off[hi]))
            hist = Histories.from_arrays(h_off[lo:hi + 1] - h_off[lo], flat[0][ev], flat[1][ev], flat[2][ev])
            parts.append(self._score(hist, values, c_off[lo:hi + 1], width))
            lo = hi
        cand = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        vectors = np.concatenate([p[2] for p in parts])
        d = self.engine.dim
        return pa.table({
            "user": pa.array(np.repeat(users, counts)),
            "candidate": pa.array(cand),
            "score": pa.array(scores),
            "intent": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), d),
        })

    def _score(self, hist: Histories, values: IntArray, c_off: IntArray, width: int) -> tuple[Any, Any, Any]:
        """Candidates, scores and intent vectors of consecutive users (``c_off`` their slice
        of ``values``), through one rectangular ``[U, width]`` call padded with each user's
        first candidate (the padding is dropped)."""
        counts = np.diff(c_off)
        col = np.arange(width)
        keep = col[None, :] < counts[:, None]
        grid = values[np.minimum(c_off[:-1, None] + col[None, :], c_off[1:, None] - 1)]
        scores = self.engine.score_batch(hist, grid, n_threads=self.n_threads)
        vectors = self.engine.intent_vectors_batch(hist, grid, n_threads=self.n_threads)
        return grid[keep], scores[keep].astype(np.float32), vectors[keep].astype(np.float32)


def _empty(dim: int) -> Any:
    import pyarrow as pa

    return pa.table({"user": pa.array([], pa.int64()), "candidate": pa.array([], pa.int64()),
                     "score": pa.array([], pa.float32()),
                     "intent": pa.FixedSizeListArray.from_arrays(pa.array([], pa.float32()), dim)})


def compute_features(
    bundle: str | os.PathLike[str],
    histories: str | os.PathLike[str],
    candidates: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    ray_address: str | None = None,
    actors: int | None = None,
    batch_users: int = 256,
    overwrite: bool = False,
) -> FeatureReport:
    """Write the features of every (user, candidate) row of ``candidates`` to ``out_dir``.

    ``ray_address`` (``"local"`` or a cluster address) runs the batches in ``actors`` Ray
    actors (default: one per CPU of the cluster, one engine thread each); without it they run
    here, on all cores.
    """
    import pyarrow.parquet as pq

    if batch_users < 1:
        raise InputError(f"batch_users must be >= 1, got {batch_users}")
    out = Path(out_dir).absolute()
    if out.exists() and not overwrite:
        raise InputError(f"{out} already exists; pass overwrite=True to replace it")
    started = time.perf_counter()
    engine = Engine.load(bundle)  # validates the bundle once, on the driver
    grouped = group_requests(histories, candidates, engine.n_items)
    rows = int(grouped.column("candidates").combine_chunks().offsets[-1].as_py()) if grouped.num_rows else 0
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        if ray_address is None:
            runner = "local"
            worker = FeatureWorker(engine)
            for k, lo in enumerate(range(0, max(grouped.num_rows, 1), batch_users)):
                part = worker(grouped.slice(lo, batch_users))
                pq.write_table(part, tmp / f"part-{k:05d}.parquet")
        else:
            runner = f"ray ({ray_address})"
            _features_on_ray(bundle, grouped, tmp, ray_address, actors, batch_users)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return FeatureReport(out, grouped.num_rows, rows, engine.dim, time.perf_counter() - started, runner)


def _features_on_ray(bundle: str | os.PathLike[str], grouped: Any, out: Path, address: str, actors: int | None,
                     batch_users: int) -> None:
    from airrec._ray import connect

    ray = connect(address)
    # One block per batch, so every actor gets work (one block would feed one actor).
    blocks = [grouped.slice(lo, batch_users) for lo in range(0, max(grouped.num_rows, 1), batch_users)]
    n = min(actors or max(1, int(ray.cluster_resources().get("CPU", 1))), len(blocks))
    ds = ray.data.from_arrow(blocks)
    # The bundle path must be readable on every node (a shared file system or the same path).
    features = ds.map_batches(
        FeatureWorker, fn_constructor_args=(str(Path(bundle).absolute()), 1), batch_size=batch_users,
        batch_format="pyarrow", concurrency=n, num_cpus=1,
    )
    features.write_parquet(str(out))


def read_features(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """A features directory as NumPy arrays sorted by (user, candidate row order): ``user``,
    ``candidate``, ``score`` ``[n]`` and ``intent`` ``[n, dim]`` (for checks and tests)."""
    import pyarrow.parquet as pq

    table = pq.read_table(Path(out_dir))
    user = table.column("user").to_numpy()
    order = np.argsort(user, kind="stable")
    intent = table.column("intent").combine_chunks()
    dim = intent.type.list_size
    return {"user": user[order], "candidate": table.column("candidate").to_numpy()[order],
            "score": table.column("score").to_numpy()[order],
            "intent": intent.flatten().to_numpy().reshape(-1, dim)[order]}
