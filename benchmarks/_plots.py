"""Plotting helpers shared by the benchmark scripts (matplotlib is optional)."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend, or None where matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def loglog_panels(panels, title: str, path: str | Path) -> Path | None:
    """One PNG of side-by-side log-log panels.

    ``panels`` is a list of ``(panel title, x label, y label, {line label: (xs, ys)})``;
    lines whose label starts with ``faast`` are drawn solid, the others dashed.
    """
    plt = pyplot()
    if plt is None:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    for ax, (name, xlabel, ylabel, lines) in zip(axes[0], panels, strict=True):
        for label, (xs, ys) in lines.items():
            style = "-o" if label.startswith("faast") else "--."
            ax.plot(xs, ys, style, label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
