"""The images stage of `pipeline run`, before the folds: the test images decoded at the size they
are predicted at and the training images at every size the recipe trains at and at
duplicates.SIZE (the run's one decoding), and looked at before anything trains on them: test
images that cannot be read are a notice, training images an error, both said in the same run.
Images nearly constant once decoded are a warning (vision/spread.py); near duplicates
(vision/duplicates.py) are listed in duplicates.csv, and the folds stage keeps each group in one
fold, naming them in a line."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline import PipelineError
from pipeline.core.files import fingerprint, write_csv
from pipeline.stages.context import Run
from pipeline.stages.engine import stage
from pipeline.vision import duplicates
from pipeline.vision.spread import nearly_constant, sample


def images_stage(r: Run) -> np.ndarray | None:
    """Each training image's group of near duplicates (the position of its first image), or
    None when no image has one: then the folds are split as they always were."""
    sizes = sorted({p.size for p in r.recipe.phases})
    out = r.run_dir / "duplicates.csv"

    def look():
        # the test images first, at the size they are predicted at: unreadable ones are a notice
        # (their rows predicted from the labels) said before any error on the training images
        r.test_images.prepare([r.recipe.phases[-1].size])
        # (every rank: each opens, or one builds, the cache; the compared size in the same decoding)
        r.train_images.prepare(sorted({*sizes, duplicates.SIZE}))
        if not r.ranks.main:
            return
        images = r.train_images[duplicates.SIZE]  # (one size for every recipe: the same folds)
        warning = nearly_constant(sample(images), r.data_dir)
        if warning:
            r.log(warning)
        hashes, thumbs, flat = duplicates.fingerprints(images)
        groups = duplicates.duplicate_groups(hashes, thumbs, flat)
        grouped = np.flatnonzero(np.bincount(groups, minlength=len(groups))[groups] > 1)
        write_csv(out, pd.DataFrame({"group": np.unique(groups[grouped], return_inverse=True)[1] + 1,
                                     "id": r.train["id"].to_numpy()[grouped],
                                     "hash": [f"{h:016x}" for h in hashes[grouped]]}))

    made = (duplicates.MAX_DISTANCE, duplicates.CLOSE, duplicates.FLAT)  # (changed: found again)
    stage(r, "images", fingerprint(r.keys["data"], duplicates.SIZE, r.comp.resize, made), [out], look)
    return read_groups(r)


def read_groups(r: Run) -> np.ndarray | None:
    """duplicates.csv as each training image's group (the position of its group's first image)."""
    table = pd.read_csv(r.run_dir / "duplicates.csv", dtype={"id": str})
    if table.empty:
        return None
    at = pd.Index(r.train["id"].astype(str)).get_indexer(table["id"])
    if (at < 0).any():
        raise PipelineError(f"{r.run_dir / 'duplicates.csv'}: ids not in the training data; delete it to "
                            f"find the duplicates again")
    groups = np.arange(len(r.train))
    groups[at] = pd.Series(at).groupby(table["group"].to_numpy()).transform("min").to_numpy()
    return groups


def kept_together(r: Run) -> str:
    """The line the folds stage says: how many groups, a few of them, and where all are listed."""
    table = pd.read_csv(r.run_dir / "duplicates.csv", dtype={"id": str})
    shown = [" = ".join(g["id"][:2]) + (f" (+{len(g) - 2})" if len(g) > 2 else "") for _, g in table.groupby("group")]
    return (f"{len(shown)} group{'s' if len(shown) > 1 else ''} of near-duplicate training images "
            f"({len(table)} images), each kept in one fold: "
            f"{', '.join(shown[:3])}{', ...' if len(shown) > 3 else ''}; all of them in {r.run_dir / 'duplicates.csv'}")
