"""The learning-rate range test on a tiny problem: geometric rates, a stop on divergence,
everything restored afterwards, a suggestion inside the tested range, a PNG; from the command
line for any phase, and as a phase's rate ("find")."""
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.competition import load
from pipeline.core.device import Device
from pipeline.metrics import accuracy
from pipeline.recipe import Phase, Recipe, differential
from pipeline.stages.context import start
from pipeline.stages.train import lr_find
from pipeline.training.epochs import make_optimizer
from pipeline.training.lr_find import RangeTest, plot, range_test
from pipeline.training.models import create_model, layer_groups
from pipeline.training.tasks import CLASSIFICATION
from pipeline.training.trainer import fit, phase_range_test

from conftest import shrink, tiny_data

CPU = Device.pick("cpu")
RECIPE = Recipe(arch="test_efficientnet", weights="none", batch_size=6, phases=(Phase(size=24, epochs=1, lr=1e-2),))


def test_rates_grow_geometrically_the_test_stops_on_divergence_and_everything_is_restored(tmp_path):
    data = tiny_data(tmp_path)
    torch.manual_seed(0)
    model = create_model("test_efficientnet", 3, "none")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = phase_range_test(model, RECIPE, 0, data, dev=CPU, steps=300)
    assert result.lrs[0] == 1e-7
    assert np.allclose(result.lrs[1:] / result.lrs[:-1], (10 / 1e-7) ** (1 / 299))  # 1e-7 -> 10 in 300 steps
    assert result.diverged and len(result.lrs) < 300 and result.smoothed[-1] > 4 * result.smoothed.min()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BatchNorm statistics
    assert result.lrs[0] <= result.suggestion <= result.lrs[-1]


def test_on_a_learnable_problem_the_suggestions_lie_where_the_loss_falls(tmp_path):
    torch.manual_seed(0)
    x = torch.cat([torch.randn(64, 2) + 2, torch.randn(64, 2) - 2])  # two blobs, a linear classifier
    y = torch.cat([torch.zeros(64, dtype=torch.long), torch.ones(64, dtype=torch.long)])
    net = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW([{"params": list(net.parameters()), "lr": 1.0, "peak_lr": 1.0}])
    result = range_test(net, [(x[i::8], y[i::8]) for i in range(8)], optimizer, lambda t: t, CPU, CLASSIFICATION,
                        steps=400)
    assert result.fell and not result.diverged and len(result.lrs) == 400  # convex: it never blows up
    i = np.searchsorted(result.lrs, result.steepest)
    assert 1e-3 < result.steepest < result.minimum and result.smoothed[i + 20] < result.smoothed[i - 20] - 0.01
    assert result.lrs[0] < result.suggestion < result.minimum


def test_the_optimizer_is_restored_and_differential_ratios_are_kept(tmp_path):
    torch.manual_seed(0)
    model = create_model("test_efficientnet", 3, "none")
    phase = Phase(size=16, epochs=1, lr=differential(1e-2))
    optimizer = make_optimizer(layer_groups(model), phase, 0.01)
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    seen = []
    step = optimizer.step
    optimizer.step = lambda *a, **k: seen.append([g["lr"] for g in optimizer.param_groups]) or step(*a, **k)
    saved = optimizer.state_dict()
    range_test(model, [(x, y)], optimizer, lambda t: t, CPU, CLASSIFICATION, steps=5)
    # the early group runs at a ninth of the head's rate throughout (decay and no-decay groups each)
    assert all(np.isclose(lrs[0] * 9, lrs[-1]) for lrs in seen) and len(seen) == 5
    assert optimizer.state_dict()["state"] == saved["state"] == {}


@pytest.mark.quick
def test_suggestions_on_a_loss_curve_the_test_sets(tmp_path):
    lrs = np.geomspace(1e-5, 1, 50)
    smoothed = 2 - np.tanh(3 * (np.log10(lrs) + 2.5)) + np.where(lrs > 0.1, 30 * (lrs - 0.1), 0)
    result = RangeTest(lrs, smoothed, smoothed, True)
    assert np.isclose(np.log10(result.steepest), -2.5, atol=0.1)  # the tanh falls fastest there
    assert result.minimum == lrs[np.argmin(smoothed)] and result.suggestion == result.minimum / 10
    rising = RangeTest(lrs, lrs, lrs, True)  # a loss that never falls: no suggestion below the range
    assert not rising.fell and lrs[0] <= rising.suggestion < lrs[rising.skip]
    plot(result, tmp_path / "lr.png", "test")
    assert (tmp_path / "lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lr_find_for_a_later_phase_trains_the_earlier_ones_once(workdir, plant_data):
    recipe = replace(shrink(load("plant-seedlings").recipes["cpu"]), train_folds=(0,))
    log = []
    r = start("plant-seedlings", recipe=recipe, data=str(plant_data), log=log.append)
    text = lr_find(r, 3, 0, steps=15)
    assert "training phases 1-2 first" in " ".join(log)
    png = workdir / "data" / "runs" / "plant-seedlings" / "custom" / "lr_find_phase3_fold0.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and str(png) in text and "suggestion" in text
    log.clear()
    lr_find(r, 3, 0, steps=15)
    assert not any("training phases" in line for line in log)  # the earlier phases were kept


def test_a_phase_whose_rate_is_find_trains_at_the_suggestion(tmp_path):
    recipe = replace(RECIPE, phases=(Phase(size=24, epochs=1, lr=1e-2), Phase(size=24, epochs=2, lr="find")))
    torch.manual_seed(0)
    log = []
    fit(create_model("test_efficientnet", 3, "none"), recipe, tiny_data(tmp_path), accuracy, tmp_path / "f",
        key="key", dev=CPU, log=log.append)
    line = next(l for l in log if "lr range test suggests" in l)
    found = float(line.split()[-1])
    steps = pd.read_csv(tmp_path / "f" / "steps.csv")
    peak = steps[steps["phase"] == 1]["lr"].max()
    assert 0.5 * found < peak <= found * (1 + 1e-6)  # 1cycle reaches its peak rate at about a quarter in
