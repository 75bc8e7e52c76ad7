"""Training curves: per model, valid HR@10 and training loss by epoch (one line per seed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airrec.evaluate.report import pyplot

__all__ = ["plot_training"]


def plot_training(training: Sequence[Mapping[str, Any]], out_dir: str | Path) -> list[Path]:
    """Write ``training_curves.png`` from training logs (``TrainResult.to_dict()`` entries
    with ``model`` and ``seed``). Returns the files written; without matplotlib, ``[]``."""
    if not training:
        return []
    plt = pyplot("the training plots")
    if plt is None:
        return []
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig, (ax_hr, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    colours: dict[str, Any] = {}
    for run in training:
        model = str(run["model"])
        colour = colours.setdefault(model, f"C{len(colours) % 10}")
        epochs = [e["epoch"] for e in run["epochs"]]
        label = model if sum(1 for r in training if r["model"] == model and r is not run and r["seed"] < run["seed"]) == 0 else None
        ax_hr.plot(epochs, [float("nan") if e["valid_hr10"] is None else e["valid_hr10"] for e in run["epochs"]], color=colour, label=label, alpha=0.8)
        ax_hr.axvline(run["best_epoch"], color=colour, linestyle=":", alpha=0.4)
        ax_loss.plot(epochs, [e["loss"] for e in run["epochs"]], color=colour, alpha=0.8)
    ax_hr.set_xlabel("epoch")
    ax_hr.set_ylabel("valid HR@10 (mean over domains)")
    ax_hr.set_title("selection metric (dotted: chosen epoch)")
    ax_hr.legend(fontsize="small")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss")
    ax_loss.set_title("training loss (AIR: backbone + AIR objectives)")
    fig.tight_layout()
    path = out / "training_curves.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]
