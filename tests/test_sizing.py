"""The starter recipe sized to the data (vision/sizing.py): the images' own size up to the model's,
epochs from their number, within the cpu recipe's budget; what the command line sets kept."""
from dataclasses import replace

import cv2
import numpy as np
import pytest

from pipeline.cli import main
from pipeline.recipe import AUTO, starter, validate
from pipeline.stages.context import start
from pipeline.training.models import GROUP_NAMES
from pipeline.vision.sizing import ImageFacts, image_facts, minutes, own_size, sized

pytestmark = pytest.mark.quick


def write_photos(folder, count, height, width, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        cv2.imwrite(str(folder / f"{i}.jpg"), rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    return sorted(folder.iterdir())


def test_the_size_is_the_images_own_rounded_to_32_up_to_the_models_native_one(tmp_path):
    wide = image_facts(write_photos(tmp_path / "wide", 5, 200, 300), test=0, classes=2)
    assert wide.side == 200 and own_size(wide, "efficientnet_lite0") == 192
    big = image_facts(write_photos(tmp_path / "big", 5, 600, 400), test=0, classes=2)
    assert own_size(big, "efficientnet_lite0") == 224 and own_size(big, "efficientnet_lite2") == 260
    tiny = image_facts(write_photos(tmp_path / "tiny", 3, 40, 50), test=0, classes=2)
    assert own_size(tiny, "efficientnet_lite0") == 64
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.jpg").write_bytes(b"not an image")  # no header: the model's own size
    assert own_size(image_facts(list((tmp_path / "junk").iterdir()), 0, 2), "efficientnet_lite0") == 224


def test_fewer_images_train_more_epochs_and_the_budget_holds():
    cpu = starter(random_crop=0.75)["cpu"]
    few = sized(cpu, ImageFacts(train=250, test=150, side=375, classes=2))
    many = sized(cpu, ImageFacts(train=20000, test=5000, side=375, classes=2))
    for recipe in (few, many):
        assert not recipe.auto
        validate(recipe, GROUP_NAMES, "sized")
    assert few.phases[0].size == 224 and few.phases[0].epochs > many.phases[0].epochs
    assert few.phases[1].epochs > many.phases[1].epochs >= 1
    assert minutes(few, ImageFacts(250, 150, 375, 2)) <= cpu.budget
    assert minutes(many, ImageFacts(20000, 5000, 375, 2)) <= cpu.budget
    # the budget is what takes 20,000 images below the images' size; with time enough they get it
    assert many.phases[1].size < 224
    roomy = sized(replace(cpu, budget=600), ImageFacts(20000, 5000, 375, 2))
    assert roomy.phases[1].size == 224 and roomy.phases[1].epochs >= many.phases[1].epochs
    # no timing goes in: the same images size the same recipe, on any machine
    assert sized(cpu, ImageFacts(250, 150, 375, 2)) == few
    # the folds the budget still has room for: most for a few hundred images, one for thousands
    assert len(few.fold_list()) >= 3 and many.train_folds == (0,)
    assert minutes(replace(few, train_folds=(0,)), ImageFacts(250, 150, 375, 2)) < minutes(few, ImageFacts(250, 150, 375, 2))


def test_the_gpu_starter_has_no_budget_and_an_explicit_size_is_kept():
    gpu = sized(starter()["gpu"], ImageFacts(train=20000, test=5000, side=375, classes=2))
    assert [p.size for p in gpu.phases] == [224, 224] and gpu.phases[1].epochs >= 3
    fixed = starter(size=256, cpu_size=128)
    assert not any(r.auto for r in fixed.values()) and fixed["cpu"].phases[1] .epochs == 2


def test_a_run_says_the_sized_recipe_and_its_minutes_and_keeps_what_the_command_line_set(workdir):
    assert main(["new", "sized-photos", "--layout", "folders"]) == 0
    data = workdir / "data" / "sized-photos"
    for label in ("ant", "bee"):
        write_photos(data / "train" / label, 6, 90, 120, seed=len(label))
    tests = write_photos(data / "test", 3, 90, 120, seed=9)
    (data / "sample_submission.csv").write_text("file,label\n" + "".join(f"{p.name},ant\n" for p in tests))
    said = []
    r = start("sized-photos", arch="test_efficientnet", weights="none", assignments=["phase2.epochs=1"],
              log=lambda *parts: said.append(" ".join(map(str, parts))))
    head, tune = r.recipe.phases
    assert (head.size, tune.size) == (96, 96) and tune.epochs == 1 and head.epochs == 20  # 10 images: 1 step
    assert AUTO not in (head.size, head.epochs)
    line = next(s for s in said if "recipe sized to 12 training images" in s)
    assert "median shorter side 90px" in line and "1) 20 epochs of the head at 96px" in line
    assert "every fold of 5; about" in line and "minutes on a 2-core CPU (budget 10)" in line
