"""Each kind of bad input stops the run at once with one line naming the file or setting and the fix."""
import shutil
from dataclasses import replace

import pytest

from pipeline import PipelineError
from pipeline.cli import main
from pipeline.competition import load
from pipeline.recipe import Phase
from pipeline.run import run_all, start

from conftest import shrink


def start_plant(data, **kw):
    recipe = shrink(load("plant-seedlings").recipes["cpu"])
    return start("plant-seedlings", data=str(data), recipe=kw.pop("recipe", recipe), log=lambda *a: None, **kw)


def test_missing_train_folder(workdir, plant_data):
    shutil.rmtree(plant_data / "train")
    with pytest.raises(PipelineError, match=r"plant-seedlings: not plant-seedlings's data \(needs train"):
        start_plant(plant_data)


def test_empty_train_folder(workdir, plant_data):
    shutil.rmtree(plant_data / "train")
    (plant_data / "train").mkdir()
    with pytest.raises(PipelineError, match=r"train: no training images found"):
        start_plant(plant_data)


def test_class_folder_not_in_the_definition(workdir, plant_data):
    (plant_data / "train" / "Dandelion").mkdir()
    with pytest.raises(PipelineError, match=r"train/Dandelion: class folder 'Dandelion' is not one of"):
        start_plant(plant_data)


def test_image_that_fails_to_decode(workdir, plant_data):
    bad = plant_data / "train" / "Maize" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    r = start_plant(plant_data)
    with pytest.raises(PipelineError, match=r"1 of 61 images are not readable .*broken.png; all of them are listed"):
        run_all(r)
    assert not (workdir / "submissions").exists()


def test_sample_submission_ids_that_do_not_match_the_test_folder(workdir, plant_data):
    (plant_data / "test" / "t0000.png").unlink()
    with pytest.raises(PipelineError, match=r"sample_submission.csv: its ids don't match the test folder"):
        start_plant(plant_data)


def test_recipe_with_an_unknown_layer_group(workdir, plant_data):
    recipe = shrink(load("plant-seedlings").recipes["cpu"])
    recipe = replace(recipe, phases=(Phase(size=32, epochs=1, lr=1e-3, frozen=("backbone",)),))
    with pytest.raises(PipelineError, match=r"phase 1: unknown layer group 'backbone'; .* early, late, head"):
        start_plant(plant_data, recipe=recipe)


def test_a_random_crop_share_outside_0_to_1(workdir, plant_data, capsys):
    assert main(["run", "plant-seedlings", "--data", str(plant_data), "--random-crop", "1.5"]) == 2
    assert "random_crop=1.5; the smallest share of an image's area a crop keeps" in capsys.readouterr().err


def test_cli_prints_one_line_and_exits_2(workdir, plant_data, capsys):
    shutil.rmtree(plant_data / "train")
    assert main(["run", "plant-seedlings", "--data", str(plant_data)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pipeline: error: --data ")
    assert main(["run", "no-such-competition"]) == 2
    assert "available: " in capsys.readouterr().err


def test_cli_lists_competitions(capsys):
    assert main(["list"]) == 0
    assert {"digits", "plant-seedlings"} <= set(capsys.readouterr().out.split())


def test_what_the_layout_skips_is_named_at_the_start(workdir, plant_data):
    (plant_data / "train" / "Maize" / "notes.txt").write_text("x")
    (plant_data / "train" / "Maize" / "anim.gif").write_bytes(b"GIF89a")
    (plant_data / "test" / ".DS_Store").write_bytes(b"")
    for name in ("Black-grass", "Charlock"):
        for p in (plant_data / "train" / name).iterdir():
            p.unlink()
    lines = []
    start("plant-seedlings", data=str(plant_data), recipe=shrink(load("plant-seedlings").recipes["cpu"]),
          log=lines.append)
    empty = next(line for line in lines if "class folders with no images" in line)
    assert empty.startswith("plant-seedlings: skipped 2 class folders") and "train/Charlock" in empty
    other = next(line for line in lines if "not images" in line)
    assert "skipped 3 files that are not images (.gif, .txt, no suffix)" in other and "anim.gif" in other
