"""Each kind of bad input stops the run at once with one line naming the file or setting and the fix."""
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import TensorDataset

from pipeline import PipelineError
from pipeline.cli import main
from pipeline.competition import load
from pipeline.core.device import Device
from pipeline.recipe import Phase
from pipeline.stages import train as training_stages
from pipeline.stages.check import check
from pipeline.stages.context import start
from pipeline.stages.run import run_all
from pipeline.training.epochs import epoch_loader

from conftest import PLANT_CLASSES, shrink, write_image


def start_plant(data, **kw):
    recipe = shrink(load("plant-seedlings").recipes["cpu"])
    return start("plant-seedlings", data=str(data), recipe=kw.pop("recipe", recipe), log=lambda *a: None, **kw)


@pytest.mark.quick
def test_missing_train_folder(workdir, plant_data):
    shutil.rmtree(plant_data / "train")
    with pytest.raises(PipelineError, match=r"plant-seedlings: not plant-seedlings's data \(needs train"):
        start_plant(plant_data)


@pytest.mark.quick
def test_empty_train_folder(workdir, plant_data):
    shutil.rmtree(plant_data / "train")
    (plant_data / "train").mkdir()
    with pytest.raises(PipelineError, match=r"train: no training images found"):
        start_plant(plant_data)


@pytest.mark.quick
def test_class_folder_not_in_the_definition(workdir, plant_data):
    (plant_data / "train" / "Dandelion").mkdir()
    with pytest.raises(PipelineError, match=r"train/Dandelion: class folder 'Dandelion' is not one of"):
        start_plant(plant_data)


@pytest.mark.quick
def test_training_data_of_one_class_is_refused_before_anything_trains(workdir, plant_data):
    for name in PLANT_CLASSES[1:]:
        shutil.rmtree(plant_data / "train" / name)
    with pytest.raises(PipelineError) as e:
        start_plant(plant_data)
    assert str(e.value) == (f"{plant_data / 'train'}: every training image is labelled 'Black-grass'; a classifier "
                            f"needs at least two classes: point --data at the full data, or add images of other classes")
    assert not (workdir / "data" / "runs").exists()


@pytest.mark.quick
def test_a_batch_as_large_as_the_fold_is_said_at_the_folds_start(workdir, plant_data, monkeypatch):
    said, trained = [], []
    monkeypatch.setattr(training_stages, "fit", lambda *a, **kw: trained.append(said[-1]))  # the line comes before training
    recipe = replace(shrink(load("plant-seedlings").recipes["cpu"]), batch_size=64, folds=5)
    r = start("plant-seedlings", data=str(plant_data), recipe=recipe, log=lambda *a: said.append(" ".join(a)))
    r.run_dir.mkdir(parents=True)
    training_stages.train_stage(r, training_stages.folds_stage(r))
    warning = "  batch size 64 for fold 0's 48 training images trains one step an epoch; --batch-size 8 gives 6"
    assert trained == [warning] and said.count(warning) == 1


@pytest.mark.quick
def test_the_one_step_warning_agrees_with_the_loader():
    dev = Device.pick("cpu")
    for images in (1, 5, 31, 32, 33, 63, 64, 65, 200):
        order = np.arange(images)
        steps = len(epoch_loader(TensorDataset(torch.zeros(images)), order, min(32, images), 0, dev))
        assert bool(training_stages.one_step_epochs(32, images, 0)) == (steps == 1), images


@pytest.mark.quick
def test_image_that_fails_to_decode(workdir, plant_data):
    bad = plant_data / "train" / "Maize" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    r = start_plant(plant_data)
    with pytest.raises(PipelineError, match=r"1 of 61 images are not readable .*broken.png; all of them are listed"):
        run_all(r)
    assert not (workdir / "submissions").exists()


def test_a_jpeg_cut_short_stops_the_run_unless_the_competition_keeps_it(workdir, plant_data, capfd):
    noise = np.random.default_rng(0).integers(0, 256, (96, 96, 3), np.uint8)
    whole = cv2.imencode(".jpg", cv2.GaussianBlur(noise, (9, 9), 3))[1].tobytes()
    cut = plant_data / "train" / "Maize" / "cut.jpg"
    cut.write_bytes(whole[:int(len(whole) * 0.6)])  # a download broken off: libjpeg would fill the rest grey
    r = start_plant(plant_data)
    with pytest.raises(PipelineError, match=rf"1 of 61 images are not readable .*: {cut}; all of them are listed"):
        run_all(r)
    assert not (workdir / "submissions").exists()
    # a competition that opts in: the same data, kept, and said
    folder = workdir / "competitions" / "plant-keep"
    folder.mkdir(parents=True)
    (folder / "competition.py").write_text((load("plant-seedlings").folder / "competition.py").read_text()
                                           + '\ntruncated_images = "keep"\n')
    capfd.readouterr()
    r = start("plant-keep", data=str(plant_data), recipe=shrink(load("plant-seedlings").recipes["cpu"]), log=print)
    r.train_images.prepare([32])
    err = capfd.readouterr().err
    assert f'kept 1 of 61 images that are JPEGs cut short, the missing part grey (truncated_images = "keep"): {cut};' in err
    assert "Premature end" not in err and "Corrupt JPEG" not in err
    (folder / "competition.py").write_text((folder / "competition.py").read_text() + 'truncated_images = "fix"\n')
    with pytest.raises(PipelineError, match=r"competition.py: truncated_images 'fix'; use one of refuse, keep"):
        load("plant-keep")


@pytest.mark.quick
def test_sample_submission_ids_that_do_not_match_the_test_folder(workdir, plant_data):
    (plant_data / "test" / "t0000.png").unlink()
    with pytest.raises(PipelineError, match=r"sample_submission.csv: its ids don't match the test folder"):
        start_plant(plant_data)


@pytest.mark.quick
def test_recipe_with_an_unknown_layer_group(workdir, plant_data):
    recipe = shrink(load("plant-seedlings").recipes["cpu"])
    recipe = replace(recipe, phases=(Phase(size=32, epochs=1, lr=1e-3, frozen=("backbone",)),))
    with pytest.raises(PipelineError, match=r"phase 1: unknown layer group 'backbone'; .* early, late, head"):
        start_plant(plant_data, recipe=recipe)


@pytest.mark.quick
def test_a_random_crop_share_outside_0_to_1(workdir, plant_data, capsys):
    assert main(["run", "plant-seedlings", "--data", str(plant_data), "--random-crop", "1.5"]) == 2
    assert "random_crop=1.5; the smallest share of an image's area a crop keeps" in capsys.readouterr().err


@pytest.mark.quick
def test_cli_prints_one_line_and_exits_2(workdir, plant_data, capsys):
    shutil.rmtree(plant_data / "train")
    assert main(["run", "plant-seedlings", "--data", str(plant_data)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pipeline: error: --data ")
    assert main(["run", "no-such-competition"]) == 2
    assert "available: " in capsys.readouterr().err


@pytest.mark.quick
def test_cli_lists_competitions(capsys):
    assert main(["list"]) == 0
    assert {"digits", "plant-seedlings"} <= set(capsys.readouterr().out.split())


@pytest.mark.quick
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


PLANT = ["run", "plant-seedlings", "--arch", "test_efficientnet", "--weights", "none"]


@pytest.mark.quick
@pytest.mark.parametrize("args, said", [
    (["--batch-size", "0"], "batch_size=0; images per batch, at least 1"),
    (["--seed", "-1"], "seed=-1; a whole number from 0 to 2**32 - 1"),
    (["--snapshots", "phase9-epoch1"], "no snapshot 'phase9-epoch1': the recipe takes one per cycle end, phase1-epoch2"),
    (["--snapshots", "99"], "snapshots=99, but the recipe takes 6"),
    (["--arch", "no_such_net"], "unknown model 'no_such_net'"),
    (["--train-folds", "1,1"], "train_folds names fold 1 twice; list each fold once"),
    (["--train-folds", "0,7"], "train_folds [7] outside 0..4"),
])
def test_settings_are_checked_before_anything_is_trained(workdir, plant_data, capsys, args, said):
    assert main([*PLANT, "--data", str(plant_data), *args]) == 2
    out, err = capsys.readouterr()
    assert said in err and len(err.strip().splitlines()) == 1
    assert "fold 0 of" not in out and not list((workdir / "data" / "runs").rglob("fold*"))  # (only its failed record)


@pytest.mark.quick
def test_a_corrupt_test_image_is_said_before_the_first_epoch(workdir, plant_data, monkeypatch):
    (plant_data / "test" / "t0003.png").write_bytes(b"\x89PNG\r\n\x1a\n cut off")
    said = []

    class Training(Exception):
        pass

    def fit(*args, **kw):
        raise Training
    monkeypatch.setattr(training_stages, "fit", fit)
    r = start("plant-seedlings", data=str(plant_data), recipe=shrink(load("plant-seedlings").recipes["cpu"]),
              log=lambda *parts: said.append(" ".join(map(str, parts))))
    with pytest.raises(Training):
        run_all(r)
    notices = [i for i, line in enumerate(said) if "1 of 7 test images are not readable" in line and "t0003.png" in line]
    assert len(notices) == 1 and notices[0] < min(i for i, line in enumerate(said) if "fold 0 of" in line)


@pytest.mark.quick
def test_a_definition_with_a_syntax_error_names_its_line(workdir, capsys):
    folder = workdir / "competitions" / "broken"
    folder.mkdir(parents=True)
    (folder / "competition.py").write_text('slug = "broken"\nclasses = ["a", "b"\nmetric = None\n')
    assert main(["run", "broken"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"pipeline: error: {folder / 'competition.py'}:2: ") and "never closed" in err
    (folder / "competition.py").write_text('slug = "broken"\nclasses = undefined_name\n')
    assert main(["run", "broken"]) == 2
    assert "competition.py:2: NameError: name 'undefined_name' is not defined" in capsys.readouterr().err


@pytest.mark.quick
def test_an_empty_labels_csv_or_sample_is_one_line(workdir, tmp_path, capsys):
    from kaggle_layouts import dog_breeds
    root = dog_breeds(tmp_path / "dog-breed-identification")
    (root / "labels.csv").write_bytes(b"")
    assert main(["run", "dog-breed-identification", "--data", str(root)]) == 2
    assert f"{root / 'labels.csv'}: not a readable CSV (No columns to parse from file)" in capsys.readouterr().err
    root = dog_breeds(tmp_path / "again")
    (root / "sample_submission.csv").write_bytes(b"")
    assert main(["run", "dog-breed-identification", "--data", str(root)]) == 2
    assert f"{root / 'sample_submission.csv'}: not a readable CSV" in capsys.readouterr().err


@pytest.mark.quick
def test_a_read_only_work_folder_is_one_line(workdir, plant_data, capsys, monkeypatch):
    workdir.chmod(0o555)
    if os.access(workdir, os.W_OK):  # root writes anywhere: the refusal a user would meet, made by hand
        made = Path.mkdir

        def refused(self, *a, **kw):
            if workdir in self.parents:
                raise PermissionError(13, "Permission denied", str(self))
            return made(self, *a, **kw)
        monkeypatch.setattr(Path, "mkdir", refused)
    try:
        assert main([*PLANT, "--data", str(plant_data)]) == 2
    finally:
        workdir.chmod(0o755)
    err = capsys.readouterr().err
    assert f"pipeline: error: {workdir}/" in err and len(err.strip().splitlines()) == 1
    assert "cannot write here (Permission denied); run pipeline from a folder you can write to" in err


@pytest.mark.quick
def test_a_full_disk_names_the_file_and_the_space(workdir, plant_data, capsys, monkeypatch):
    import pandas as pd

    def no_space(self, path, *a, **kw):  # what pyarrow raises when the disk fills mid-write
        Path(path).write_bytes(b"x" * 4096)
        raise OSError("No space left on device (error writing bytes to file)")
    monkeypatch.setattr(pd.DataFrame, "to_parquet", no_space)
    r = start_plant(plant_data)
    with pytest.raises(PipelineError, match=r"runs\.parquet: the disk is full \(0 MiB written, [\d,]+ MiB free on "):
        run_all(r)
    assert not list((workdir / "data" / "registry").glob(".*tmp"))  # nothing half-written left


@pytest.mark.quick
def test_the_decoded_image_cache_refuses_a_disk_it_cannot_fit(workdir, plant_data, monkeypatch):
    import shutil as sh
    real = sh.disk_usage
    monkeypatch.setattr(sh, "disk_usage", lambda p: real(p)._replace(free=1000))
    r = start_plant(plant_data)
    with pytest.raises(PipelineError, match=r"-32px\.partial\.npy: the decoded images need 0 MiB more at 32px, and "
                                            r".* has 0 MiB free; free some space"):
        r.train_images.prepare([32])


@pytest.mark.quick
def test_a_truncated_state_file_restarts_the_fold_with_a_warning(workdir, plant_data):
    recipe = shrink(load("plant-seedlings").recipes["cpu"])
    recipe = replace(recipe, train_folds=(0,), phases=(replace(recipe.phases[-1], epochs=2),))

    def stop(*parts):
        if "epoch 2/2" in " ".join(map(str, parts)):  # (epoch 1's state saved)
            raise KeyboardInterrupt
    r = start_plant(plant_data, recipe=recipe)
    r.log = stop
    with pytest.raises(KeyboardInterrupt):
        run_all(r)
    state = workdir / "data" / "runs" / "plant-seedlings" / "custom" / "fold0" / "state.pt"
    state.write_bytes(state.read_bytes()[:1000])  # a copy cut off
    said = []
    r = start_plant(plant_data, recipe=recipe)
    r.log = lambda *parts: said.append(" ".join(map(str, parts)))
    run_all(r)
    assert any(f"{state} is unreadable" in line and "training this fold from its start" in line for line in said)
    assert any("epoch 1/2" in line for line in said)


@pytest.mark.parametrize("weights", ["last.pt", "swa.pt"])
def test_a_cut_off_checkpoint_is_a_fold_to_train_again_not_a_crash_in_predict(workdir, plant_data, weights):
    recipe = shrink(load("plant-seedlings").recipes["cpu"])
    recipe = replace(recipe, train_folds=(0,), phases=(recipe.phases[-1],))  # (an SWA phase: swa.pt too)
    run_all(start_plant(plant_data, recipe=recipe))
    path = workdir / "data" / "runs" / "plant-seedlings" / "custom" / "fold0" / weights
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])  # a copy cut off
    said = []
    r = start_plant(plant_data, recipe=replace(recipe, tta=2))  # (predict runs again: it loads the weights)
    r.log = lambda *parts: said.append(" ".join(map(str, parts)))
    run_all(r)
    [line] = [line for line in said if str(path) in line]
    assert line.startswith(f" fold 0: {path} does not load (RuntimeError: ") and line.endswith("training this fold again")
    assert "[train] up to date, skipped" not in said and any("epoch 1/2" in line for line in said)
    torch.load(path, map_location="cpu", weights_only=False)  # whole again


def test_a_test_image_that_cannot_be_read_is_predicted_from_the_class_prior_and_said_once(workdir, plant_data):
    for i in range(3):  # Maize the likeliest class: the prior is not uniform
        write_image(plant_data / "train" / "Maize" / f"extra{i}.png", seed=7 + 12 * i)
    broken = plant_data / "test" / "t0003.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")  # the sample lists it: it cannot be deleted
    recipe = shrink(load("plant-seedlings").recipes["cpu"])
    recipe = replace(recipe, train_folds=(0, 1), phases=(recipe.phases[-1],), tta=2)
    said = []
    result = run_all(start("plant-seedlings", data=str(plant_data), recipe=recipe,
                           log=lambda *parts: said.append(" ".join(map(str, parts)))))
    listing = workdir / "data" / "cache" / "plant-seedlings"
    [notice] = [line for line in said if "not readable" in line]
    assert notice.startswith(f"plant-seedlings: 1 of 7 test images are not readable (corrupt, cut short or not "
                             f"images): {broken}; their rows are predicted from the class prior (each class's share "
                             f"of the training labels), and listed with the reason in {listing}")
    record = result["unreadable_test"]
    assert record["count"] == 1 and record["ids"] == ["t0003.png"] and record["listing"] in notice
    run_dir = workdir / "data" / "runs" / "plant-seedlings" / "custom"
    assert json.loads((run_dir / "scores.json").read_text())["unreadable_test"] == record
    preds = pd.read_parquet(run_dir / "test_predictions.parquet")
    prior = np.array([8 if c == "Maize" else 5 for c in PLANT_CLASSES]) / 63
    np.testing.assert_allclose(preds.loc[preds["id"] == "t0003.png", PLANT_CLASSES].to_numpy(), [prior, prior],
                               rtol=1e-6)  # both folds
    assert not np.allclose(preds.loc[preds["id"] == "t0004.png", PLANT_CLASSES].to_numpy(), prior)
    submission = pd.read_csv(workdir / "submissions" / "plant-seedlings" / "custom.csv")
    assert submission.set_index("file").loc["t0003.png", "species"] == "Maize" and len(submission) == 7


@pytest.mark.quick
def test_unreadable_training_and_test_images_are_both_said_in_one_run(workdir, plant_data):
    (plant_data / "train" / "Maize" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (plant_data / "test" / "t0005.png").write_bytes(b"")
    said = []
    r = start("plant-seedlings", data=str(plant_data), recipe=shrink(load("plant-seedlings").recipes["cpu"]),
              log=lambda *parts: said.append(" ".join(map(str, parts))))
    with pytest.raises(PipelineError, match=r"^1 of 61 images are not readable .*broken.png; all of them are listed"):
        run_all(r)
    assert [line for line in said if "1 of 7 test images are not readable" in line and "t0005.png" in line]


@pytest.mark.quick
def test_problems_with_the_training_data_and_the_test_data_are_one_error(workdir, plant_data):
    (plant_data / "train" / "Dandelion").mkdir()
    (plant_data / "test" / "t0000.png").unlink()
    with pytest.raises(PipelineError) as e:
        start_plant(plant_data)
    assert str(e.value).startswith(f"{plant_data / 'train' / 'Dandelion'}: class folder 'Dandelion' is not one of")
    assert f"; also, {plant_data / 'sample_submission.csv'}: its ids don't match the test folder" in str(e.value)
    shutil.rmtree(plant_data / "test")  # no test folder at all: said with the training data's problem too
    with pytest.raises(PipelineError, match=r"is not one of .*; also, .*test: folder of test images missing"):
        start_plant(plant_data)


@pytest.mark.quick
def test_check_leaves_the_test_images_to_the_run_and_says_so(workdir, plant_data):
    (plant_data / "test" / "t0002.png").write_bytes(b"not an image")
    said = []
    r = start("plant-seedlings", data=str(plant_data), recipe=shrink(load("plant-seedlings").recipes["cpu"]),
              log=lambda *parts: said.append(" ".join(map(str, parts))))
    passed, report = check(r, images=8, steps=2, size=32)  # (whether 2 steps memorise 8 images is not the point)
    assert not any("not readable" in line for line in said)  # (check decodes only the training images it uses)
    assert "and no test image; `pipeline run`" in report and "from the class prior" in report
