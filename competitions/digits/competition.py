"""digits: scikit-learn's bundled 8x8 handwritten digits as a tiny Kaggle-style competition.

Needs no download, credentials or network: the data is written on first use. It is the
quickstart and the smoke test of every stage (`pipeline run digits`, about a minute on a CPU).
"""
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from pipeline.layouts import LabelsCSV
from pipeline.metrics import accuracy
from pipeline.recipe import Phase, Recipe
from pipeline.search import Float
from pipeline.competition import Submission

slug = "digits"  # not on Kaggle: built from sklearn.datasets.load_digits
classes = [str(d) for d in range(10)]
layout = LabelsCSV(csv="train.csv", id_column="id", label_column="label", suffix=".png")
metric = accuracy
symmetry = "none"  # a mirrored 2 or a turned 6 is another digit: no flips, no flipped TTA views
submission = Submission(id_column="id", label_column="label")

# about a minute on a 2-core CPU: two of three folds, the whole network at 40 px (the images are
# 32 px; a little larger keeps a 2x2 map at the end of efficientnet's stride-32 body)
_recipe = Recipe(
    folds=3,
    train_folds=(0, 1),
    batch_size=32,
    tta=1,
    phases=(Phase(size=40, epochs=2, lr=2e-3),),
)
recipes = {"cpu": _recipe, "gpu": _recipe}
# `pipeline tune digits`: the rate, and the two regularisers
search = {
    "phase1.lr": Float(3e-4, 3e-2, log=True),
    "label_smoothing": Float(0.0, 0.2),
    "weight_decay": Float(1e-3, 0.1, log=True),
}


def make_data(folder: Path) -> None:
    """Write train/, test/, train.csv, sample_submission.csv and solution.csv (the held-out answers)."""
    digits = load_digits()
    images = (digits.images * (255 / 16)).astype(np.uint8)
    ids = np.array([f"{i:04d}" for i in range(len(images))])
    train_ids, test_ids = train_test_split(ids, test_size=300, stratify=digits.target, random_state=0)
    label = dict(zip(ids, digits.target.astype(str)))
    for split, split_ids in (("train", train_ids), ("test", test_ids)):
        (folder / split).mkdir(parents=True, exist_ok=True)
        for i in split_ids:
            img = cv2.resize(images[int(i)], (32, 32), interpolation=cv2.INTER_CUBIC)
            cv2.imwrite(str(folder / split / f"{i}.png"), img)
    test_ids = sorted(test_ids)
    pd.DataFrame({"id": sorted(train_ids), "label": [label[i] for i in sorted(train_ids)]}).to_csv(
        folder / "train.csv", index=False)
    pd.DataFrame({"id": test_ids, "label": [label[i] for i in test_ids]}).to_csv(folder / "solution.csv", index=False)
    # written last: its presence marks the data as complete (see pipeline.kaggle.locate.has_data)
    pd.DataFrame({"id": test_ids, "label": "0"}).to_csv(folder / "sample_submission.csv", index=False)
