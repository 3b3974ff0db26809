"""Near-duplicate training images (the same picture under two ids, re-encoded or a shade
brighter) are found by their hashes, listed in duplicates.csv, named in a line and kept in one
fold; data without them is split as it always was, under the same key. Images nearly constant
once decoded (posterised to 0-2) are a warning, in a run and in `pipeline check`."""
from dataclasses import replace

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.competition import load
from pipeline.core.files import fingerprint
from pipeline.core.keys import settings_for
from pipeline.stages.check import check
from pipeline.stages.context import start
from pipeline.stages.train import folds_stage
from pipeline.training.folds import assign_folds
from pipeline.training.tasks import CLASSIFICATION, MULTILABEL
from pipeline.vision.duplicates import duplicate_groups, fingerprints
from pipeline.vision.spread import nearly_constant

from conftest import shrink

pytestmark = pytest.mark.quick


class Log(list):
    def __call__(self, *parts):
        self.append(" ".join(map(str, parts)))


def picture(seed: int, size: int = 64) -> np.ndarray:
    """A smooth random colour picture: a 6x6 grid of colours, enlarged."""
    small = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def jpeg(img: np.ndarray, quality: int = 75) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)


def brighter(img: np.ndarray, by: int = 1) -> np.ndarray:
    return np.clip(img.astype(int) + by, 0, 255).astype(np.uint8)


def test_copies_re_encodings_and_brighter_copies_are_grouped_and_nothing_else():
    images = np.stack([picture(s) for s in range(40)])
    images = np.concatenate([images, images[3:4], jpeg(images[7])[None], brighter(images[9])[None]])
    groups = duplicate_groups(*fingerprints(images))
    grouped = {g: np.flatnonzero(groups == g).tolist() for g in np.unique(groups) if (groups == g).sum() > 1}
    assert grouped == {3: [3, 40], 7: [7, 41], 9: [9, 42]}


def test_blank_images_are_not_duplicates_of_each_other():
    images = np.concatenate([np.zeros((3, 32, 32, 3), np.uint8), np.full((2, 32, 32, 3), 128, np.uint8)])
    hashes, thumbs, flat = fingerprints(images)
    assert flat.all() and (duplicate_groups(hashes, thumbs, flat) == np.arange(5)).all()


def test_a_group_lands_in_one_fold_and_no_groups_split_as_before():
    y = np.arange(60) % 3
    plain = assign_folds(y, 5, 0, ["a", "b", "c"], CLASSIFICATION)
    groups = np.arange(60)
    groups[[10, 25, 40]], groups[[4, 58]] = 10, 4  # two groups: 10, 25, 40 and 4, 58
    folds = assign_folds(y, 5, 0, ["a", "b", "c"], CLASSIFICATION, groups)
    assert len(set(folds[[10, 25, 40]])) == 1 and len(set(folds[[4, 58]])) == 1
    assert (assign_folds(y, 5, 0, ["a", "b", "c"], CLASSIFICATION, np.arange(60)) == plain).all()
    tags = (np.arange(60)[:, None] % [2, 3, 5] == 0).astype(np.float32)
    folds = assign_folds(tags, 5, 0, ["x", "y", "z"], MULTILABEL, groups)
    assert len(set(folds[[10, 25, 40]])) == 1 and len(set(folds[[4, 58]])) == 1


def plant_run(plant_data, log, recipe=None, run=None):
    recipe = recipe or replace(shrink(load("plant-seedlings").recipes["cpu"]), batch_size=8)
    r = start("plant-seedlings", recipe=recipe, data=str(plant_data), log=log, run=run)
    r.run_dir.mkdir(parents=True, exist_ok=True)
    return r


def test_near_duplicates_in_the_data_are_kept_in_one_fold_and_named(workdir, plant_data):
    charlock, maize = plant_data / "train" / "Charlock", plant_data / "train" / "Maize"
    (charlock / "01999ab.png").write_bytes((charlock / "01002ab.png").read_bytes())  # the same file again
    cv2.imwrite(str(maize / "07999ab.png"), brighter(cv2.imread(str(maize / "07003ab.png"))))  # a shade brighter
    log = Log()
    r = plant_run(plant_data, log)
    folds = pd.Series(folds_stage(r), index=r.train["id"])
    assert folds["01999ab"] == folds["01002ab"] and folds["07999ab"] == folds["07003ab"]
    assert list(pd.read_csv(r.run_dir / "folds.csv", dtype={"id": str})["id"]) == list(r.train["id"])
    table = pd.read_csv(r.run_dir / "duplicates.csv", dtype={"id": str})
    assert sorted(map(sorted, table.groupby("group")["id"].apply(list))) == \
        [["01002ab", "01999ab"], ["07003ab", "07999ab"]]
    [line] = [line for line in log if "near-duplicate" in line]
    assert line.startswith("2 groups of near-duplicate training images (4 images), each kept in one fold: ")
    assert "01002ab = 01999ab" in line and "07003ab = 07999ab" in line
    assert str(r.run_dir / "duplicates.csv") in line

    log.clear()
    folds_stage(plant_run(plant_data, log))  # the same data again: nothing found anew, nothing split anew
    assert "[images] up to date, skipped" in log and "[folds] up to date, skipped" in log

    # a recipe at another size looks at the same images, so it has the same folds (runs compare, blend)
    other = plant_run(plant_data, Log(), replace(r.recipe, phases=tuple(replace(p, size=40) for p in r.recipe.phases)),
                      run="other")
    assert (folds_stage(other) == folds.to_numpy()).all()
    assert other.keys["images"] == r.keys["images"] and other.keys["folds"] == r.keys["folds"]


def test_data_without_duplicates_is_split_as_before_under_the_same_key(workdir, plant_data):
    log = Log()
    r = plant_run(plant_data, log)
    folds = folds_stage(r)
    assert (folds == assign_folds(r.targets, r.recipe.folds, r.recipe.seed, r.comp.classes, r.comp.task)).all()
    assert r.keys["folds"] == fingerprint(r.keys["data"], settings_for(r.recipe, "folds"))  # (runs keep their folds)
    assert pd.read_csv(r.run_dir / "duplicates.csv").empty
    assert not any("near-duplicate" in line or "nearly constant" in line for line in log)


def posterised(plant_data):
    """The data as a copy posterised to pixel values 0-2 would have it."""
    for path in plant_data.glob("**/*.png"):
        cv2.imwrite(str(path), cv2.imread(str(path)) // 100)
    return plant_data


def test_nearly_constant_images_are_a_warning_naming_the_data(workdir, plant_data):
    assert nearly_constant(np.stack([picture(s) for s in range(8)]), plant_data) is None
    log = Log()
    folds_stage(plant_run(posterised(plant_data), log))
    [line] = [line for line in log if "nearly constant" in line]
    assert line.startswith(f"{plant_data}: the training images are nearly constant once decoded")
    assert "brightest pixel 2" in line


def test_check_warns_of_nearly_constant_images(workdir, plant_data):
    passed, report = check(plant_run(plant_data, Log()), images=12, steps=1, size=32)
    assert "nearly constant" not in report
    passed, report = check(plant_run(posterised(plant_data), Log()), images=12, steps=1, size=32)
    assert report.startswith(f"WARNING: {plant_data}: the training images are nearly constant"), report
