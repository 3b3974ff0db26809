"""`pipeline check`: passes on a healthy setup, fails (saying why) on shuffled labels with a
frozen network, and always writes the labelled batch."""
from dataclasses import replace

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
