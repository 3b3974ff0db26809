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


def image_grid(images, titles: list[str], path: Path, cell: tuple[float, float] = (3.0, 3.3),
               fontsize: int = 7, cols: int = 4) -> None:
    """`images` in rows of `cols`, each over its title, as one PNG (a labelled batch, top losses)."""
    plt = pyplot()
    rows = (len(images) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cell[0] * cols, cell[1] * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, title in zip(axes.flat, images, titles):
        ax.imshow(img)
        ax.set_title(title, fontsize=fontsize)
    fig.tight_layout()
    save_png(fig, path)
