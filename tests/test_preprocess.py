"""Competition-level preprocessing: the plants cut out of the soil, applied once as images are
decoded into the cache, named in its file names, and the same in worker processes."""
import cv2
import numpy as np
import pytest

from pipeline import PipelineError
from pipeline.competition import load
from pipeline.preprocess import green_mask, green_plants
from pipeline.vision.images import ImageCache

from conftest import shrink


def seedling(seed: int, size: int = 60) -> np.ndarray:
    """A green leaf and a thin green blade on brown gravel and a white ruler, as RGB."""
    rng = np.random.default_rng(seed)
    shade = rng.normal(1.0, 0.25, (size, size, 1))  # gravel: lighter and darker grains of one brown
    img = np.clip(np.array([140, 110, 80]) * shade, 0, 255).astype(np.uint8)
    img[: size // 6] = 235  # the ruler
    cv2.circle(img, (size // 3, size // 2), size // 6, (60, 150, 50), -1)  # a leaf
    cv2.line(img, (size // 2, size - 5), (size - 5, size // 3), (90, 160, 60), 2)  # a grass blade
    return img


def leaf_pixels(size: int = 60) -> np.ndarray:
    plant = np.zeros((size, size), np.uint8)
    cv2.circle(plant, (size // 3, size // 2), size // 6, 1, -1)
    cv2.line(plant, (size // 2, size - 5), (size - 5, size // 3), 1, 2)
    return plant.astype(bool)


@pytest.mark.quick
def test_green_plants_keeps_the_leaves_and_blacks_out_soil_and_ruler():
    img, plant = seedling(0), leaf_pixels()
    mask = green_mask(img).astype(bool)
    assert (mask & plant).sum() / plant.sum() > 0.97  # the blade too, two pixels wide
    assert (mask & ~plant).sum() / (~plant).sum() < 0.02  # soil and ruler gone
    out = green_plants(img)
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert np.array_equal(out[mask], img[mask]) and out[~mask].max() == 0


def write(folder, n=6):
    paths = [folder / f"{i}.png" for i in range(n)]
    for i, p in enumerate(paths):
        p.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(p), cv2.cvtColor(seedling(i, 40 + 4 * i), cv2.COLOR_RGB2BGR))
    return paths


@pytest.mark.quick
def test_the_cache_holds_preprocessed_images_in_files_of_their_own(tmp_path):
    paths = write(tmp_path / "img")
    plain = ImageCache(paths, tmp_path / "cache", key="k", workers=1)[32]
    cut = ImageCache(paths, tmp_path / "cache", key="k", workers=2, preprocess=green_plants)[32]
    memory = ImageCache(paths, preprocess=green_plants)[32]
    assert np.array_equal(np.asarray(cut), memory)  # worker processes do what one process does
    assert (np.asarray(cut) == 0).all(-1).mean() > 0.5 > (np.asarray(plain) == 0).all(-1).mean()
    names = sorted(p.name for p in (tmp_path / "cache").glob("*.npy"))
    assert names[0] == "k-32px-green_plants-" + names[0].split("-green_plants-")[1] and names[1] == "k-32px.npy"


def write_competition(root, preprocess_lines):
    folder = root / "competitions" / "leafy"
    folder.mkdir(parents=True)
    (folder / "competition.py").write_text(
        "from pipeline.layouts import ClassFolders\nfrom pipeline.metrics import accuracy\n"
        "from pipeline.competition import Submission\nfrom pipeline.recipe import starter\n"
        "slug = 'leafy'\nlayout = ClassFolders()\nclasses = None\nmetric = accuracy\n"
        "submission = Submission(id_column='id', label_column='label')\nrecipes = starter(size=32)\n"
        + preprocess_lines)
    return folder


@pytest.mark.quick
def test_a_competition_names_its_preprocessing_and_may_write_its_own(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_COMPETITIONS", str(tmp_path / "competitions"))
    write_competition(tmp_path, "def darker(img):\n    return img // 2\npreprocess = darker\n")
    comp = load("leafy")
    paths = write(tmp_path / "img")
    # defined in a competition.py, which worker processes cannot import: decoded in this process
    cache = ImageCache(paths, tmp_path / "cache", key="k", workers=4, preprocess=comp.preprocess)
    assert cache.workers == 1
    darker = np.asarray(cache[24])
    assert np.array_equal(darker, ImageCache(paths, preprocess=comp.preprocess)[24]) and darker.max() <= 128

    other = tmp_path / "other"
    write_competition(other, "preprocess = 'green'\n")
    monkeypatch.setenv("PIPELINE_COMPETITIONS", str(other / "competitions"))
    with pytest.raises(PipelineError, match=r"leafy/competition.py: `preprocess` is a function"):
        load("leafy")



def test_pipeline_run_trains_and_predicts_on_the_preprocessed_images(tmp_path, monkeypatch, workdir):
    """`preprocess = green_plants` in a definition: a whole run sees the cut-out images, training and
    test alike, and changing the preprocessing trains again rather than reuse the earlier folds."""
    from pipeline.stages.context import start
    from pipeline.stages.run import run_all
    monkeypatch.setenv("PIPELINE_COMPETITIONS", str(tmp_path / "competitions"))
    folder = write_competition(tmp_path, "from pipeline.preprocess import green_plants\npreprocess = green_plants\n")
    data = tmp_path / "leafy-data"
    for c in ("a", "b"):
        write(data / "train" / c, n=6)
    write(data / "test", n=3)
    (data / "sample_submission.csv").write_text("id,label\n" + "".join(f"{i}.png,a\n" for i in range(3)))
    r = start("leafy", data=str(data), log=lambda *a: None, train_folds=(0,), folds=2, tta=1)
    r.recipe = shrink(r.recipe)
    run_all(r)
    caches = sorted(p.name for p in (workdir / "data" / "cache" / "leafy").glob("*.npy"))
    assert caches and all("-green_plants-" in n for n in caches)
    for images in (r.train_images, r.test_images):
        x = np.asarray(images[32])
        assert (x == 0).all(-1).mean() > 0.5  # the gravel is black: these are the cut-out images
    # another preprocessing: the data's key changes, so the folds train again
    (folder / "competition.py").write_text((folder / "competition.py").read_text().replace(
        "preprocess = green_plants", "def darker(img):\n    return img // 2\npreprocess = darker"))
    log = []
    r = start("leafy", data=str(data), log=lambda *a: log.append(" ".join(map(str, a))), train_folds=(0,), folds=2,
              tta=1)
    r.recipe = shrink(r.recipe)
    run_all(r)
    assert " fold 0 of 2" in log and not any("skipped" in line for line in log)
