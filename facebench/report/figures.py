"""PNG figures from report JSON (matplotlib's Agg canvas; no pyplot global state)."""

from __future__ import annotations

import numpy as np

from facebench.fileio import atomic_file


def _figure(width: float = 6.0, height: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.13, top=0.92)  # fixed: one draw only
    return fig, fig.add_subplot(1, 1, 1)


def save_figure(fig, path: str) -> str:
    """Write ``fig`` as PNG to ``path`` (temporary name, then rename)."""
    with atomic_file(path) as f:
        fig.savefig(f, format="png")
    return path


def roc_figure(curves: dict[str, dict], title: str, path: str) -> str:
    """TAR against FAR (log axis), one line per model; ``curves`` maps model -> report ``roc``."""
    fig, ax = _figure()
    for model, roc in curves.items():
        far, tar = np.asarray(roc["far"]), np.asarray(roc["tar"])
        keep = far > 0
        ax.plot(far[keep], tar[keep], label=model, drawstyle="steps-post")
    ax.set_xscale("log")
    ax.set_xlabel("FAR (false accept rate)")
    ax.set_ylabel("TAR (true accept rate)")
    ax.set_title(f"ROC: {title}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return save_figure(fig, path)


def histogram_figure(
    histogram: dict,
    thresholds: dict[str, float | None],
    title: str,
    path: str,
    labels: tuple[str, str, str, str] = ("genuine", "impostor", "genuine", "impostor"),
) -> str:
    """Two score histograms (keys ``labels[:2]`` of ``histogram``) with vertical threshold lines.

    ``labels[2:]`` are the legend names; each density is normalized to unit area."""
    fig, ax = _figure()
    edges = np.asarray(histogram["edges"])
    for key, name, colour in zip(labels[:2], labels[2:], ("tab:green", "tab:red"), strict=True):
        counts = np.asarray(histogram[key], dtype=float)
        density = counts / max(counts.sum(), 1) / np.diff(edges)
        ax.stairs(density, edges, fill=True, alpha=0.5, color=colour, label=name)
    styles = iter(("-", "--", ":", "-."))
    for name, value in thresholds.items():
        if value is not None:
            ax.axvline(value, color="black", linestyle=next(styles), label=f"{name} {value:.3f}")
    ax.set_xlabel("cosine similarity" if labels[0] == "genuine" else "score")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return save_figure(fig, path)


def loss_figure(curves: dict[str, list[float]], plateaued: dict[str, bool], path: str) -> str:
    """Mean training loss per epoch, a line per model (log axis: heads differ in scale); a model
    whose loss did not reach its plateau is dashed and marked in the legend."""
    fig, ax = _figure()
    for model, losses in curves.items():
        done = plateaued.get(model, False)
        label = model if done else f"{model} (no plateau)"
        epochs = np.arange(1, len(losses) + 1)
        ax.plot(
            epochs, losses, marker="o", markersize=3, linestyle="-" if done else "--", label=label
        )
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean training loss (log scale)")
    ax.set_title("Training loss per epoch")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return save_figure(fig, path)


def accuracy_figure(curves: dict[str, dict], marks: dict[str, float], title: str, path: str):
    """Accuracy against one global cosine threshold, a line per model, its optimum marked."""
    fig, ax = _figure()
    for model, curve in curves.items():
        (line,) = ax.plot(curve["threshold"], curve["accuracy"], label=model)
        if marks.get(model) is not None:
            ax.axvline(marks[model], color=line.get_color(), linestyle="--", alpha=0.7)
    ax.set_xlabel("cosine threshold (same iff cos > threshold)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Accuracy vs threshold: {title}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return save_figure(fig, path)
