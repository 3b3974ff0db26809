"""Figures as files: matplotlib without a display (a terminal, a Kaggle kernel), PNGs written whole."""
from __future__ import annotations

from pathlib import Path

from pipeline.core.files import atomic_path


def pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only: no display in a terminal or a Kaggle kernel
    import matplotlib.pyplot as plt
    return plt


def save_png(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    pyplot().close(fig)
