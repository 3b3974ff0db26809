"""`pipeline check`: passes on a healthy setup, fails (saying why) on shuffled labels with a
frozen network, and always writes the labelled batch."""
from dataclasses import replace

import pandas as pd
import pytest
import torch

from pipeline.cli import main
from pipeline.competition import load
from pipeline.core.device import Device
from pipeline.stages.context import start
from pipeline.training.tasks import CLASSIFICATION
from pipeline.stages.check import check, overfit

from conftest import shrink

PNG = b"\x89PNG\r\n\x1a\n"


def plant_run(plant_data):
    recipe = shrink(load("plant-seedlings").recipes["cpu"])
    return start("plant-seedlings", recipe=replace(recipe, batch_size=8), data=str(plant_data), log=lambda *a: None)


@pytest.mark.quick
def test_a_healthy_setup_memorises_the_images(workdir, plant_data):
    passed, report = check(plant_run(plant_data), images=24, steps=300, size=32, lr=1e-2)
    assert passed and report.splitlines()[1].startswith("PASS: memorised 24 images"), report
    out = workdir / "data" / "runs" / "plant-seedlings" / "custom" / "check"
    assert (out / "batch.png").read_bytes()[:8] == PNG and (out / "overfit.png").read_bytes()[:8] == PNG


@pytest.mark.quick
def test_check_decodes_only_the_images_it_looks_at_and_says_so(workdir, plant_data):
    # an unreadable image among those check does not look at: the run's to find, as the report says
    (plant_data / "train" / "Maize" / "zz-broken.png").write_bytes(b"not an image")
    passed, report = check(plant_run(plant_data), images=12, steps=1, size=32)
    assert report.splitlines()[-1] == ("looked at 12 of 61 training images and no test image; `pipeline run` "
                                       "decodes every one, names the unreadable and the near duplicates, and "
                                       "predicts test images that cannot be read from the class prior"), report
    assert not list((workdir / "data").rglob("*.npy"))  # no cache of the whole training set was built


@pytest.mark.quick
def test_shuffled_labels_with_a_frozen_network_fail_and_say_why(workdir, plant_data):
    # only the head can learn, and at a rate far too low: the loss barely moves
    passed, report = check(plant_run(plant_data), images=48, steps=30, size=32, lr=1e-5,
                           frozen=("early", "late"), shuffle_labels=True)
    assert not passed and "FAIL: could not memorise 48 images in 30 steps" in report, report
    assert "frozen layer groups, or a learning rate far too low" in report


@pytest.mark.quick
def test_nothing_trainable_and_divergence_are_named():
    net = torch.nn.Linear(2, 2)
    for p in net.parameters():
        p.requires_grad_(False)
    x, y = torch.randn(8, 2), torch.randint(0, 2, (8,))
    assert "every weight is frozen" in overfit(net, x, y, Device.pick("cpu"), CLASSIFICATION).message
    assert "too high" in overfit(torch.nn.Linear(2, 2), x * 1e30, y, Device.pick("cpu"), CLASSIFICATION, lr=1e30).message


@pytest.mark.quick
def test_the_cli_exit_code_says_pass_or_fail(workdir, plant_data, capsys):
    assert main(["check", "plant-seedlings", "--data", str(plant_data), "--arch", "test_efficientnet",
                 "--weights", "none", "--images", "12", "--steps", "3", "--size", "32",
                 "--frozen", "early,late,head"]) == 1
    assert "every weight is frozen" in capsys.readouterr().out


def rossmann_run(tmp_path, **changes):
    """Rossmann's definition on a few stores' weeks of the real data, with a small network."""
    from table_data import rossmann, tiny_recipe
    data = rossmann(tmp_path / "rossmann")
    return start("rossmann-store-sales", recipe=tiny_recipe(**changes), data=str(data), log=lambda *a: None), data


@pytest.mark.quick
def test_a_table_check_summarises_the_columns_and_memorises_rows(workdir, tmp_path):
    r, _ = rossmann_run(tmp_path)
    passed, report = check(r, images=48, steps=200)
    assert passed and "PASS: memorised 48 rows" in report, report
    lines = report.splitlines()
    assert lines[0] == f"table: {len(r.train)} training rows (after the skip rule), {len(r.test)} test rows"
    assert lines[1].startswith("target Sales: ") and lines[1].endswith("learnt as log1p")
    assert "Store 5, DayOfWeek " in lines[2] and "CompetitionDistance" in lines[3]
    assert "CompetitionOpenSinceYear 40% / 40%" in lines[4]  # 2 of the 5 stores have no competition date
    out = workdir / "data" / "runs" / "rossmann-store-sales" / "custom" / "check"
    columns = pd.read_csv(out / "columns.csv").set_index("column")
    assert columns.loc["Store", "kind"] == "categorical" and columns.loc["Store", "values"] == 5
    assert columns.loc["CompetitionDistance", "kind"] == "continuous" and columns.loc["Promo", "missing_train"] == 0
    assert (out / "overfit.png").read_bytes()[:8] == PNG


@pytest.mark.quick
def test_a_table_check_fails_on_shuffled_targets_with_a_frozen_network(workdir, tmp_path):
    r, _ = rossmann_run(tmp_path)
    passed, report = check(r, images=48, steps=30, lr=1e-5, frozen=("early", "late"), shuffle_labels=True)
    assert not passed and "FAIL: could not memorise 48 rows in 30 steps" in report, report
    assert "frozen layer groups, or a learning rate far too low" in report


@pytest.mark.quick
def test_rows_stuck_on_the_saturated_sigmoid_are_named():
    from pipeline.stages.check import _stuck
    from pipeline.training.tasks import Regression
    net, task = torch.nn.Linear(2, 1), Regression("log1p", 0.0, 1000.0)
    with torch.no_grad():
        net.bias.fill_(-20.0)  # every row's output far below the range's floor: the sigmoid is flat there
        net.weight.zero_()
    x, y = torch.randn(8, 2), torch.full((8,), 5.0)
    result = overfit(net, x, y, Device.pick("cpu"), task, steps=20, lr=1e-2, target=0.01, what="rows")
    assert not result.passed and "the weights barely move" in result.message
    assert "8 of 8 rows' predictions are stuck at an end of the target's range" in _stuck(net, x, task)
    assert _stuck(net, x, Regression("log1p")) == ""  # no range: no sigmoid


@pytest.mark.quick
def test_check_runs_on_a_table_from_the_cli(workdir, tmp_path, capsys):
    from table_data import rossmann
    data = rossmann(tmp_path / "rossmann")
    assert main(["check", "rossmann-store-sales", "--data", str(data), "--arch", "embeddings-32-16",
                 "--images", "32"]) == 0
    out = capsys.readouterr().out
    assert "table: " in out and "PASS: memorised 32 rows" in out, out
