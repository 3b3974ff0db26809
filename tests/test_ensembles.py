"""Snapshots at cycle ends, SWA (the mean of the weights at its averaging points, BatchNorm
recomputed), the EMA of the weights, hard-negative mining, and the predict stage that averages
them and scores each."""
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from pipeline import PipelineError
from pipeline.cli import main, parser
from pipeline.competition import load
from pipeline.core.device import Device
from pipeline.metrics import accuracy
from pipeline.recipe import Phase, Recipe, mining_round, swa_round, validate
from pipeline.stages.context import start
from pipeline.stages.predict import list_snapshots
from pipeline.stages.run import run_all
from pipeline.training.averages import MovingAverage
from pipeline.training.batchnorm import recompute as recompute_bn
from pipeline.training.folds import FoldData
from pipeline.training.mining import hardest, mine_hard_examples
from pipeline.training.models import create_model
from pipeline.training.tasks import CLASSIFICATION
from pipeline.training.trainer import fit

from conftest import shrink, tiny_data

CPU = Device.pick("cpu")


def train(tmp_path, data, recipe, name="fold0"):
    torch.manual_seed(0)
    model = create_model(recipe.arch, 3, recipe.weights)
    log = []
    fit(model, recipe, data, accuracy, tmp_path / name, key="key", dev=CPU, log=log.append)
    return model, tmp_path / name, log


def read_ckpt(path):
    return torch.load(path, map_location="cpu", weights_only=False)


def test_a_snapshot_at_every_cycle_end(tmp_path):
    recipe = Recipe(arch="test_efficientnet", weights="none", batch_size=6, phases=(
        Phase(size=24, epochs=3, lr=1e-2, schedule="sgdr", cycle_len=1, cycle_mult=2),  # cycles end at 1, 3
        Phase(size=28, epochs=2, lr=1e-3)))                                              # one 1cycle: ends at 2
    model, out, _ = train(tmp_path, tiny_data(tmp_path), recipe)
    assert [p.name for p in sorted((out / "snapshots").iterdir())] == \
        ["phase1-epoch1.pt", "phase1-epoch3.pt", "phase2-epoch2.pt"]
    steps = pd.read_csv(out / "steps.csv")
    for name, phase, epoch, size in (("phase1-epoch1", 0, 0, 24), ("phase1-epoch3", 0, 2, 24), ("phase2-epoch2", 1, 1, 28)):
        snap = read_ckpt(out / "snapshots" / f"{name}.pt")
        assert (snap["phase"], snap["epoch"], snap["size"]) == (phase, epoch, size)
    # taken at the low points of the rate: it falls through each cycle and restarts at the peak
    # only after the first snapshot (3 steps an epoch: after step 2); the phase ends the second cycle
    lr = steps[steps["phase"] == 0]["lr"].to_numpy()
    assert [i for i in range(len(lr) - 1) if lr[i + 1] > lr[i]] == [2] and lr[3] == pytest.approx(1e-2)
    last = read_ckpt(out / "last.pt")["model"]
    final = read_ckpt(out / "snapshots" / "phase2-epoch2.pt")["model"]
    assert all(torch.equal(last[k], final[k]) for k in last)


def test_swa_is_the_mean_of_the_weights_at_each_cycle_end_with_batchnorm_recomputed(tmp_path):
    first = Phase(size=24, epochs=1, lr=1e-2)
    recipe = Recipe(arch="test_efficientnet", weights="none", batch_size=6, phases=(first, swa_round(first, epochs=3)))
    model, out, log = train(tmp_path, tiny_data(tmp_path), recipe)
    # the SWA round anneals each epoch (cycle), so its snapshots are the averaged weights
    points = [read_ckpt(out / "snapshots" / f"phase2-epoch{e}.pt")["model"] for e in (1, 2, 3)]
    swa = read_ckpt(out / "swa.pt")
    assert swa["size"] == 24 and any(l.startswith("  SWA:") for l in log)
    params = dict(model.named_parameters())
    for name in params:
        torch.testing.assert_close(swa["model"][name], sum(p[name] for p in points) / 3)
    # BatchNorm statistics are recomputed on the data: unlike any averaged or copied buffer
    bn = [k for k in swa["model"] if k.endswith("running_mean")]
    assert bn
    for k in bn:
        assert not torch.allclose(swa["model"][k], points[0][k])
        assert not torch.allclose(swa["model"][k], sum(p[k] for p in points) / 3)


@pytest.mark.quick
def test_ema_is_the_moving_average_of_the_weights_after_each_step_that_trains_the_body(tmp_path, monkeypatch):
    recipe = Recipe(arch="test_efficientnet", weights="none", batch_size=6, ema=0.8, phases=(
        Phase(size=24, epochs=1, lr=1e-2, frozen=("early", "late"), precompute=True),
        Phase(size=24, epochs=2, lr=1e-2)))
    seen, update = [], MovingAverage.update

    def recording(self):
        seen.append({k: v.detach().clone() for k, v in self.model.named_parameters()})
        update(self)
    monkeypatch.setattr(MovingAverage, "update", recording)
    _, out, log = train(tmp_path, tiny_data(tmp_path), recipe)
    steps = pd.read_csv(out / "steps.csv")
    assert len(seen) == (steps["phase"] == 1).sum() == 6  # the body's steps, not the head's on activations
    expected = dict(seen[0])
    for weights in seen[1:]:
        expected = {k: 0.8 * expected[k] + 0.2 * weights[k] for k in expected}
    ema = read_ckpt(out / "ema.pt")
    for k in expected:
        torch.testing.assert_close(ema["model"][k], expected[k])
    assert ema["size"] == 24 and any(line.startswith("  EMA: averaged weights") for line in log)
    last = read_ckpt(out / "last.pt")["model"]
    bn = [k for k in last if k.endswith("running_var")]
    assert bn and all(not torch.allclose(ema["model"][k], last[k]) for k in bn)  # recomputed, not copied
    with pytest.raises(PipelineError, match="ema=1.0; the moving average's decay per step"):
        validate(replace(recipe, ema=1.0), ["early", "late", "head"], "test")


@pytest.mark.quick
def test_recompute_bn_averages_every_batch_and_leaves_frozen_layers_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.BatchNorm1d(4), nn.BatchNorm1d(4))
    model[1].weight.requires_grad_(False)  # a frozen layer group's BatchNorm
    model[1].running_mean.fill_(7.0)
    batches = [torch.randn(8, 4) * 3 + 1 for _ in range(5)]
    recompute_bn(model, batches, CPU)
    x = torch.cat(batches)
    torch.testing.assert_close(model[0].running_mean, x.mean(0))
    torch.testing.assert_close(model[0].running_var, torch.stack([b.var(0) for b in batches]).mean(0))
    assert torch.equal(model[1].running_mean, torch.full((4,), 7.0))
    assert not model.training and model[0].momentum == 0.1


@pytest.mark.quick
def test_swa_needs_more_than_one_averaging_point():
    one = Recipe(phases=(Phase(size=24, epochs=2, lr=1e-3, swa=True),))  # 1cycle: one cycle end
    with pytest.raises(PipelineError, match="single set of weights"):
        validate(one, ["early", "late", "head"], "test")
    validate(replace(one, phases=(replace(one.phases[0], schedule="constant"),)), ["early", "late", "head"], "test")


@pytest.mark.quick
def test_hardest_are_the_top_loss_examples_of_a_model_whose_outputs_the_test_sets(tmp_path):
    # the "model" is the identity and each example's input is its logits, so the losses are known
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    p_true = np.array([0.9, 0.05, 0.8, 0.3, 0.99, 0.01, 0.7, 0.5, 0.6, 0.2])
    probs = np.full((10, 3), 0.0)
    probs[np.arange(10), labels] = p_true
    probs[np.arange(10), (labels + 1) % 3] = 1 - p_true
    logits = torch.tensor(np.log(probs + 1e-9), dtype=torch.float32)
    ds = torch.utils.data.TensorDataset(logits, torch.tensor(labels))
    data = FoldData(inputs=None, labels=np.concatenate([[0, 0], labels]), train_idx=np.arange(2, 12),
                    valid_idx=np.array([0, 1]), ids=np.array([f"img{i}" for i in range(12)]), classes=["a", "b", "c"], task=CLASSIFICATION)
    picked = mine_hard_examples(nn.Identity(), ds, data, 0.3, lambda x: x, CPU, 4, tmp_path / "hard.csv")
    assert list(picked) == [5, 1, 9]  # p_true 0.01, 0.05, 0.2: the three highest losses, hardest first
    csv = pd.read_csv(tmp_path / "hard.csv")
    assert list(csv["id"]) == ["img7", "img3", "img11"] and list(csv["label"]) == ["c", "b", "a"]
    assert list(csv["predicted"]) == ["a", "c", "b"]
    assert np.allclose(csv["loss"], -np.log([0.01, 0.05, 0.2]), rtol=1e-4)
    assert list(hardest(labels, probs, 0.5, CLASSIFICATION)) == [5, 1, 9, 3, 7]


@pytest.mark.quick
def test_the_mining_round_adds_the_mined_images_to_every_epoch(tmp_path):
    first = Phase(size=24, epochs=1, lr=1e-2)
    recipe = Recipe(arch="test_efficientnet", weights="none", batch_size=6,
                    phases=(first, mining_round(first, fraction=0.25, repeat=2, epochs=2)))
    data = tiny_data(tmp_path)
    _, out, log = train(tmp_path, data, recipe)
    mined = pd.read_csv(out / "hard_negatives.csv")
    assert len(mined) == round(0.25 * len(data.train_idx)) == 4
    assert sum("mined 4 hardest" in l for l in log) == 1
    steps = pd.read_csv(out / "steps.csv").groupby(["phase", "epoch"]).size()
    assert list(steps) == [18 // 6, (18 + 2 * 4) // 6, (18 + 2 * 4) // 6]  # training set + 2 x mined


def test_a_run_killed_in_the_mining_and_swa_rounds_resumes_to_the_same_weights(tmp_path):
    # (with the EMA, mixup and cutmix on: their state and random draws resume too)
    first = Phase(size=24, epochs=1, lr=1e-2)
    recipe = Recipe(arch="test_efficientnet", weights="none", batch_size=6, ema=0.9, mixup=0.4, cutmix=1.0, phases=(
        first, mining_round(first, fraction=0.25, epochs=2), swa_round(first, epochs=3)))
    data = tiny_data(tmp_path)
    kills = ["phase 2/3 epoch 2/2", "phase 3/3 epoch 3/3"]  # each fires once, before its epoch is saved

    def killer(line):
        if kills and kills[0] in line:
            kills.pop(0)
            raise KeyboardInterrupt

    for _ in range(2):
        torch.manual_seed(0)
        with pytest.raises(KeyboardInterrupt):
            fit(create_model("test_efficientnet", 3, "none"), recipe, data, accuracy, tmp_path / "killed",
                key="key", dev=CPU, log=killer)
    _, killed, log = train(tmp_path, data, recipe, "killed")
    assert any("resuming at phase 3, epoch 3" in l for l in log) and not any("mined" in l for l in log)
    _, straight, _ = train(tmp_path, data, recipe, "straight")
    for f in ("swa.pt", "ema.pt", "last.pt"):
        a, b = read_ckpt(killed / f)["model"], read_ckpt(straight / f)["model"]
        assert all(torch.equal(a[k], b[k]) for k in a), f
    assert (killed / "hard_negatives.csv").read_text() == (straight / "hard_negatives.csv").read_text()


class Log(list):
    def __call__(self, *parts):
        self.append(" ".join(map(str, parts)))


def test_predict_stage_averages_snapshots_and_swa_and_scores_each_ingredient(workdir, plant_data):
    recipe = replace(shrink(load("plant-seedlings").recipes["cpu"]), train_folds=(0,), tta=2,
                     snapshots=2).with_overrides(swa=2, ema=0.9)
    result = run_all(start("plant-seedlings", recipe=recipe, data=str(plant_data), log=Log()))
    run_dir = workdir / "data" / "runs" / "plant-seedlings" / "custom"
    names = [i["ingredient"] for i in result["ensemble"]["ingredients"]]
    assert names == ["last checkpoint, 1 view", "last checkpoint, 2 views", "2 snapshots, 1 view", "SWA, 1 view",
                     "EMA, 1 view", "ensemble of phase5-epoch1, phase5-epoch2, swa, ema, 2 views"]
    assert result["ensemble"]["ingredients"][-1]["micro_f1"] == result["oof"]
    listing = list_snapshots("plant-seedlings")
    assert "phase5-epoch2" in listing and "swa" in listing and "ema" in listing and "32px" in listing

    # any subset by name re-runs prediction only; a name that is not there is a clear error
    log = Log()
    result = run_all(start("plant-seedlings", recipe=replace(recipe, snapshots=("phase3-epoch1", "phase5-epoch2")),
                           data=str(plant_data), log=log))
    assert "[train] up to date, skipped" in log and "[predict]" in log
    assert result["ensemble"]["ingredients"][-1]["ingredient"] == \
        "ensemble of phase3-epoch1, phase5-epoch2, swa, ema, 2 views"
    with pytest.raises(PipelineError, match="no snapshot 'phase9-epoch1'"):
        run_all(start("plant-seedlings", recipe=replace(recipe, snapshots=("phase9-epoch1",)),
                      data=str(plant_data), log=Log()))
    assert (run_dir / "fold0" / "swa.pt").exists()


@pytest.mark.quick
def test_the_switches_on_the_command_line(workdir, capsys):
    args = parser().parse_args(["run", "plant-seedlings", "--snapshots", "3", "--swa", "2", "--swa-schedule",
                                "constant", "--hard-negatives", "0.1", "--oversample", "max", "--ema", "0.998"])
    assert (args.snapshots, args.swa, args.swa_schedule, args.hard_negatives, args.oversample, args.ema) == \
        (3, 2, "constant", 0.1, "max", 0.998)
    assert parser().parse_args(["run", "x", "--snapshots", "phase4-epoch3,phase5-epoch2"]).snapshots == \
        ("phase4-epoch3", "phase5-epoch2")
    assert main(["snapshots", "plant-seedlings"]) == 2
    assert "no runs of plant-seedlings in " in capsys.readouterr().err  # and what to run first
