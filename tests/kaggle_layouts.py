"""Tiny data in each competition's exact Kaggle layout (file names, folders, CSV headers and
sample submission as Kaggle ships them), with images whose colour depends on their label."""
from pathlib import Path

import cv2
import numpy as np
import pandas as pd


def write_jpg(path: Path, seed: int, level: int, size: int = 24) -> None:
    rng = np.random.default_rng(seed)
    img = np.clip(rng.integers(0, 60, (size, size, 3)) + level, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


def dog_breeds(root: Path, breeds=("beagle", "boxer", "chihuahua", "pug"), per_breed=6, n_test=5) -> Path:
    """labels.csv (id,breed), train/<id>.jpg, test/<id>.jpg, sample_submission.csv (id + a
    column per breed, alphabetical, 1/120 each as Kaggle's)."""
    ids = [f"{i:032x}" for i in range(len(breeds) * per_breed)]
    labels = [breeds[i % len(breeds)] for i in range(len(ids))]
    for i, (id_, breed) in enumerate(zip(ids, labels)):
        write_jpg(root / "train" / f"{id_}.jpg", i, 40 * breeds.index(breed))
    pd.DataFrame({"id": ids, "breed": labels}).to_csv(root / "labels.csv", index=False)
    test_ids = [f"{i:032x}" for i in range(1000, 1000 + n_test)]
    for i, id_ in enumerate(test_ids):
        write_jpg(root / "test" / f"{id_}.jpg", 100 + i, 30 * i)
    pd.DataFrame({"id": test_ids, **{b: 1 / len(breeds) for b in sorted(breeds)}}).to_csv(
        root / "sample_submission.csv", index=False)
    return root


def planet(root: Path, n_train=40, n_test=4, n_additional=3) -> Path:
    """train_v2.csv (image_name,tags), train-jpg/train_<i>.jpg, test-jpg/test_<i>.jpg,
    test-jpg-additional/file_<i>.jpg, sample_submission_v2.csv (image_name,tags)."""
    rng = np.random.default_rng(0)
    weather = ["clear", "haze", "partly_cloudy", "cloudy"]
    rows = []
    for i in range(n_train):
        tags = [weather[i % 4]] + (["primary"] if i % 4 != 3 else [])
        tags += [t for t, p in (("agriculture", 0.4), ("road", 0.3), ("water", 0.2)) if rng.random() < p]
        rows.append((f"train_{i}", " ".join(tags)))
        write_jpg(root / "train-jpg" / f"train_{i}.jpg", i, 50 * (i % 4) + 40 * ("water" in tags))
    pd.DataFrame(rows, columns=["image_name", "tags"]).to_csv(root / "train_v2.csv", index=False)
    names = [f"test_{i}" for i in range(n_test)] + [f"file_{i}" for i in range(n_additional)]
    for i, name in enumerate(names):
        folder = "test-jpg" if name.startswith("test_") else "test-jpg-additional"
        write_jpg(root / folder / f"{name}.jpg", 500 + i, 30 * i)
    pd.DataFrame({"image_name": names, "tags": "primary clear agriculture road water"}).to_csv(
        root / "sample_submission_v2.csv", index=False)
    return root


def dogs_vs_cats(root: Path, per_class=12, n_test=6) -> Path:
    """train/cat.<i>.jpg and train/dog.<i>.jpg, test/<1..n>.jpg, sample_submission.csv (id,label=0.5)."""
    for i in range(per_class):
        write_jpg(root / "train" / f"cat.{i}.jpg", i, 0)
        write_jpg(root / "train" / f"dog.{i}.jpg", 100 + i, 120)
    for i in range(1, n_test + 1):
        write_jpg(root / "test" / f"{i}.jpg", 200 + i, 60)
    pd.DataFrame({"id": range(1, n_test + 1), "label": 0.5}).to_csv(root / "sample_submission.csv", index=False)
    return root
