"""Results on disk: a JSON file (the record), a markdown table (for the README/paper) and plots.

Several :class:`~airrec.evaluate.protocol.EvalResult` of the same model, split and protocol
(one per seed) are merged into mean ± std; the per-seed values stay in the JSON so nothing is
lost. Layout of ``results.json``::

    {"format": "airrec-eval/1", "tie_rule": "pessimistic", "meta": {...},
     "results": {model: {split: {protocol: {
         "protocol": "sampled" | "full", "n_negatives": 999 | null, "seeds": [...],
         "lines": {domain: n}, "tie_rate": {domain: mean share},
         "metrics": {domain: {metric: {"mean", "std", "n", "values"}}},
         "slices": {slice: {bin: {domain: {"n": lines, metric: {"mean", "std", "n", "values"}}}}}
     }}}}}

and, when AIR models and baselines were both evaluated, ``"significance"``::

     {"<air model> vs <baseline>": {split: {protocol: {domain: {metric:
         {"diff", "ci95": [lo, hi], "p_value", "n_lines", "n_boot"}}}}}}

(a paired bootstrap over test lines of each line's metric averaged over the model's seeds,
:func:`~airrec.evaluate.metrics.paired_bootstrap`).

``protocol`` keys are ``sampled-<n>`` or ``full``; domains include ``"all"``. Missing values
(an empty slice) are ``null``. Plots need matplotlib, which is optional: without it they are
skipped with a warning.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from airrec.errors import InputError
from airrec.evaluate.metrics import DEFAULT_METRICS, aggregate_seeds, metric_values, paired_bootstrap
from airrec.evaluate.protocol import EvalResult

__all__ = [
    "FORMAT",
    "ReportPaths",
    "markdown_report",
    "markdown_table",
    "plot_results",
    "protocol_key",
    "results_json",
    "significance",
    "write_report",
]

FORMAT = "airrec-eval/1"


class ReportPaths(NamedTuple):
    """The files :func:`write_report` wrote (``plots`` is empty without matplotlib)."""

    json: Path
    markdown: Path
    plots: list[Path]

Json = dict[str, Any]


def protocol_key(result: EvalResult) -> str:
    """``sampled-999`` or ``full``: results are only merged within one protocol."""
    return "full" if result.protocol == "full" else f"sampled-{result.n_negatives}"


def _clean(value: Any) -> Any:
    """NaN -> None, recursively, so the file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _aggregate_tables(tables: Sequence[Mapping[str, Mapping[str, float]]]) -> Json:
    """Merge per-seed ``{domain: {metric: value}}`` into ``{domain: {metric: MeanStd dict}}``;
    a plain count ``n`` is carried over as is (it does not vary by seed)."""
    out: Json = {}
    for domain in tables[0]:
        cells = [{k: v for k, v in t[domain].items() if k != "n"} for t in tables]
        merged: Json = {k: m.to_dict() for k, m in aggregate_seeds(cells).items()}
        if "n" in tables[0][domain]:
            merged = {"n": int(tables[0][domain]["n"]), **merged}
        out[domain] = merged
    return out


def _by_run_group(results: Sequence[EvalResult]) -> dict[tuple[str, str, str], list[EvalResult]]:
    """Results by (model, split, protocol key): one list of runs (seeds) per table cell."""
    groups: dict[tuple[str, str, str], list[EvalResult]] = {}
    for r in results:
        groups.setdefault((r.model, r.split, protocol_key(r)), []).append(r)
    return groups


def results_json(results: Sequence[EvalResult], meta: Mapping[str, Any] | None = None) -> Json:
    """Merge results into the JSON layout of this module (seeds -> mean ± std)."""
    groups = _by_run_group(results)
    tree: Json = {}
    for (model, split, proto), runs in groups.items():
        seeds = [r.seed for r in runs]
        if len(set(seeds)) != len(seeds):
            raise InputError(f"{model} / {split} / {proto}: seed {seeds} given twice")
        if len({tuple(r.ranks.shape) for r in runs}) != 1:
            raise InputError(f"{model} / {split} / {proto}: runs over different lines")
        first = runs[0]
        slices: Json = {}
        per_run = [r.slices() for r in runs]
        for slice_name, bins in per_run[0].items():
            slices[slice_name] = {
                label: _aggregate_tables([p[slice_name][label] for p in per_run]) for label in bins
            }
        tie_rates = [r.tie_rates() for r in runs]
        entry: Json = {
            "protocol": first.protocol,
            "n_negatives": first.n_negatives,
            "seeds": seeds,
            "lines": first.line_counts(),
            "tie_rate": {d: sum(t[d] for t in tie_rates) / len(runs) for d in tie_rates[0]},
            "seconds": [r.seconds for r in runs],
            "metrics": _aggregate_tables([r.metrics() for r in runs]),
            "slices": slices,
        }
        tree.setdefault(model, {}).setdefault(split, {})[proto] = entry
    out: Json = {"format": FORMAT, "tie_rule": "pessimistic", "meta": dict(meta or {}), "results": tree}
    pairs = default_pairs(sorted({r.model for r in results}))
    if pairs:
        out["significance"] = significance(results, pairs)
    cleaned: Json = _clean(out)
    return cleaned


#: Metrics the significance block tests (the main table's).
SIGNIFICANCE_METRICS: tuple[str, ...] = ("HR@10", "NDCG@10")


def default_pairs(models: Sequence[str]) -> list[tuple[str, str]]:
    """Every AIR model (name starting ``air``, any case) against every other model."""
    airs = [m for m in models if m.lower().startswith("air")]
    others = [m for m in models if not m.lower().startswith("air")]
    return [(a, b) for a in airs for b in others]


def _per_line(runs: Sequence[EvalResult], metric: str, mask: Any) -> Any:
    """Each line's ``metric`` averaged over the runs (seeds) of one model."""
    return np.mean([metric_values(r.ranks[mask], metric) for r in runs], axis=0)


def significance(
    results: Sequence[EvalResult], pairs: Sequence[tuple[str, str]], *, n_boot: int = 10_000,
    seed: int = 0, metrics: Sequence[str] = SIGNIFICANCE_METRICS,
) -> Json:
    """Paired bootstrap of ``a - b`` for each pair, split, protocol, domain and metric.

    Lines are paired by position: both models must have been evaluated on the same lines
    (same split file, same negatives), which the harness guarantees and this checks.
    """
    groups = _by_run_group(results)
    out: Json = {}
    for a, b in pairs:
        for (model, split, proto), runs_a in sorted(groups.items()):
            runs_b = groups.get((b, split, proto))
            if model != a or runs_b is None:
                continue
            first, other = runs_a[0], runs_b[0]
            if not np.array_equal(first.domains, other.domains) or first.ranks.shape != other.ranks.shape:
                raise InputError(f"{a} and {b} were evaluated on different {split} lines ({proto})")
            cells: Json = {}
            for d, name in [(-1, "all"), *enumerate(first.domain_names)]:
                mask = np.ones(first.ranks.shape, bool) if d < 0 else first.domains == d
                if not mask.any():
                    continue
                cells[name] = {
                    m: paired_bootstrap(_per_line(runs_a, m, mask), _per_line(runs_b, m, mask),
                                        n_boot=n_boot, seed=seed).to_dict()
                    for m in metrics
                }
            out.setdefault(f"{a} vs {b}", {}).setdefault(split, {})[proto] = cells
    return out


def _significance_table(data: Json, split: str, proto: str) -> str:
    rows = ["| pair | domain | metric | difference | 95 % CI | p |", "|---|---|---|---|---|---|"]
    for pair, splits in (data.get("significance") or {}).items():
        for domain, by_metric in ((splits.get(split) or {}).get(proto) or {}).items():
            if domain == "all":
                continue
            for metric, c in by_metric.items():
                lo, hi = c["ci95"]
                rows.append(f"| {pair} | {domain} | {metric} | {c['diff']:+.4f} | "
                            f"[{lo:+.4f}, {hi:+.4f}] | {c['p_value']:.4f} |")
    return "\n".join(rows) if len(rows) > 2 else ""


def _cell(metric: Any) -> str:
    if not isinstance(metric, dict) or metric.get("mean") is None:
        return "–"
    if int(metric.get("n", 1)) > 1 and metric.get("std") is not None:
        return f"{metric['mean']:.4f} ± {metric['std']:.4f}"
    return f"{metric['mean']:.4f}"


def _domains(data: Json, split: str, proto: str) -> list[str]:
    for splits in data["results"].values():
        entry = splits.get(split, {}).get(proto)
        if entry:
            return [d for d in entry["metrics"] if d != "all"]
    return []


def markdown_table(
    data: Json, split: str, proto: str, metrics: Sequence[str] = DEFAULT_METRICS
) -> str:
    """Rows: models; columns: each domain × metrics (as in the LLMCDSR/C2DSR tables)."""
    domains = _domains(data, split, proto)
    header = ["model"] + [f"{d} {m}" for d in domains for m in metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model, splits in data["results"].items():
        entry = splits.get(split, {}).get(proto)
        if not entry:
            continue
        cells = [_cell(entry["metrics"].get(d, {}).get(m)) for d in domains for m in metrics]
        lines.append("| " + " | ".join([model, *cells]) + " |")
    return "\n".join(lines)


def _slice_table(data: Json, split: str, proto: str, slice_name: str, metric: str) -> str:
    domains = _domains(data, split, proto)
    rows: list[list[str]] = []
    labels: list[str] = []
    counts: dict[str, dict[str, int]] = {}
    for model, splits in data["results"].items():
        entry = splits.get(split, {}).get(proto)
        if not entry:
            continue
        bins = entry["slices"][slice_name]
        labels = list(bins)
        counts = {lab: {d: bins[lab][d]["n"] for d in domains} for lab in labels}
        rows.append([model] + [_cell(bins[lab][d].get(metric)) for d in domains for lab in labels])
    header = ["model"] + [f"{d} {lab} (n={counts[lab][d]})" for d in domains for lab in labels]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


_SLICE_TITLES = {
    "in_domain_events": "history events in the target's domain (cold start)",
    "history_length": "history length",
}


def markdown_report(data: Json, slice_metric: str = "HR@10") -> str:
    """All tables: per split and protocol, the main table, then ``slice_metric`` by slice."""
    out = [
        "# Evaluation results",
        "",
        "Ranks use the pessimistic tie rule (a candidate scoring equal to the target ranks above "
        "it). Mean ± sample std over seeds where more than one seed ran.",
    ]
    meta = data.get("meta") or {}
    if meta:
        out += ["", ", ".join(f"{k}: {v}" for k, v in meta.items())]
    keys = sorted({(s, p) for splits in data["results"].values() for s, ps in splits.items() for p in ps})
    for split, proto in keys:
        label = "full ranking over the target's domain" if proto == "full" else proto.replace("sampled-", "") + " sampled negatives"
        out += ["", f"## {split}: {label}", "", markdown_table(data, split, proto)]
        table = _significance_table(data, split, proto)
        if table:
            out += ["", "Paired bootstrap over lines (AIR minus baseline, per-line metric averaged "
                    "over seeds, 10,000 resamples):", "", table]
        for slice_name, title in _SLICE_TITLES.items():
            out += ["", f"{slice_metric} by {title}:", "", _slice_table(data, split, proto, slice_name, slice_metric)]
    return "\n".join(out) + "\n"


def pyplot(what: str) -> Any | None:
    """``matplotlib.pyplot`` on the headless Agg backend, or ``None`` (with a warning naming
    ``what`` is skipped) when matplotlib is not installed: plots are optional everywhere."""
    try:
        # Imported by name: matplotlib is optional, and typed as Any whether or not it is there.
        matplotlib: Any = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        return importlib.import_module("matplotlib.pyplot")
    except ImportError:
        warnings.warn(f"matplotlib is not installed: skipping {what}", RuntimeWarning, stacklevel=3)
        return None


def plot_results(data: Json, out_dir: str | os.PathLike[str], metrics: Sequence[str] = DEFAULT_METRICS) -> list[Path]:
    """One PNG per split and protocol: a panel per domain, bars per metric and model, std as
    error bars. Returns the files written; without matplotlib, warns and returns ``[]``."""
    plt = pyplot("the PNG plots")
    if plt is None:
        return []
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    keys = sorted({(s, p) for splits in data["results"].values() for s, ps in splits.items() for p in ps})
    for split, proto in keys:
        domains = _domains(data, split, proto)
        models = [m for m, sp in data["results"].items() if sp.get(split, {}).get(proto)]
        fig, axes = plt.subplots(1, len(domains), figsize=(5 * len(domains) + 3, 3.5), squeeze=False)
        width = 0.8 / max(1, len(models))
        for ax, domain in zip(axes[0], domains):
            for j, model in enumerate(models):
                cells = data["results"][model][split][proto]["metrics"][domain]
                means = [cells[m]["mean"] or 0.0 for m in metrics]
                stds = [cells[m]["std"] or 0.0 for m in metrics]
                xs = [i + (j - (len(models) - 1) / 2) * width for i in range(len(metrics))]
                ax.bar(xs, means, width, yerr=stds, label=model, capsize=2)
            ax.set_xticks(range(len(metrics)))
            ax.set_xticklabels(list(metrics), rotation=30)
            ax.set_title(f"{domain} ({split}, {proto})")
        # Beside the panels, not over the bars.
        axes[0][-1].legend(fontsize="small", loc="center left", bbox_to_anchor=(1.02, 0.5))
        fig.tight_layout()
        path = out / f"{split}_{proto}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


def write_report(
    results: Sequence[EvalResult],
    out_dir: str | os.PathLike[str],
    *,
    meta: Mapping[str, Any] | None = None,
    plots: bool = True,
) -> ReportPaths:
    """Write ``results.json``, ``results.md`` and (with matplotlib) ``plots/*.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = results_json(results, meta)
    json_path = out / "results.json"
    json_path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    md_path = out / "results.md"
    md_path.write_text(markdown_report(data), encoding="utf-8")
    pngs = plot_results(data, out / "plots") if plots else []
    return ReportPaths(json_path, md_path, pngs)
