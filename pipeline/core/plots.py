"""Figures as files: matplotlib without a display (a terminal, a Kaggle kernel), PNGs written whole."""
from __future__ import annotations

import textwrap
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
    """`images` in rows of `cols`, each over its title, as one PNG (a labelled batch, top losses).
    `cell`: the inches of a cell's width (its image's square, less a margin) and its least height.
    Titles are wrapped to their image's width, and each row has room above its images for the
    longest title's lines: placed by hand, as tight_layout's one spacing for all rows let a
    four-line title reach into the image above (and constrained layout still went past the top)."""
    plt = pyplot()
    rows = (len(images) + cols - 1) // cols
    side = 0.92 * cell[0]  # inches: each image's square, a margin between neighbours
    width = int(side * 72 / (0.62 * fontsize))  # characters that fit a line (DejaVu Sans: ~0.55 em each)
    titles = ["\n".join(textwrap.fill(part, width, break_on_hyphens=False) for part in str(t).split("\n"))
              for t in titles]
    lines = max([t.count("\n") + 1 for t in titles], default=1)
    # a line as drawn is ~1.6 font sizes tall (ascent, descent, spacing); the title's pad is 6 points
    title = max((lines * 1.6 * fontsize + 6 + 4) / 72, cell[1] - side)  # inches above each image
    row, gap = title + side, 0.08
    height = rows * row + gap
    fig = plt.figure(figsize=(cell[0] * cols, height))
    for i, (img, text) in enumerate(zip(images, titles)):
        r, c = divmod(i, cols)
        bottom = height - (r + 1) * row  # (from the figure's bottom, in inches)
        ax = fig.add_axes(((c * cell[0] + (cell[0] - side) / 2) / (cell[0] * cols), bottom / height,
                           side / (cell[0] * cols), side / height))
        ax.axis("off")
        ax.imshow(img)
        ax.set_title(text, fontsize=fontsize)
    save_png(fig, path)
