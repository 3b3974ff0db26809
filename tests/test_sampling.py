"""Oversampling: every class drawn equally often per epoch ("max"), or pushed part of the way
(a power), while validation folds stay exactly as they are."""
import numpy as np
import pandas as pd
import pytest
import torch

from pipeline import PipelineError
from pipeline.core.device import Device
from pipeline.metrics import accuracy
from pipeline.recipe import Phase, Recipe
from pipeline.training import trainer
from pipeline.training.folds import FoldData
from pipeline.training.models import create_model
from pipeline.training.sampling import class_targets, epoch_indices
from pipeline.training.tasks import CLASSIFICATION
from pipeline.training.trainer import fit
from pipeline.vision.images import ImageCache
from pipeline.vision.inputs import Images

from conftest import write_image

LABELS = np.array([0] * 50 + [1] * 20 + [2] * 7)


def counts(idx):
    return np.bincount(LABELS[idx], minlength=3)


@pytest.mark.quick
def test_max_makes_every_class_as_large_as_the_largest():
    rng = np.random.default_rng(0)
    idx = epoch_indices(LABELS, "max", rng)
    assert counts(idx).tolist() == [50, 50, 50]
    # whole copies first: every image of a rare class appears at least 50 // n times
    seen = np.bincount(idx, minlength=len(LABELS))
    assert seen[LABELS == 2].min() == 7 and seen[LABELS == 2].max() == 8
    assert (seen[LABELS == 0] == 1).all()


@pytest.mark.quick
def test_power_is_between_none_and_max_and_never_drops_images():
    assert class_targets(np.array([50, 20, 7]), 0.5).tolist() == [50, 32, 19]
    assert class_targets(np.array([50, 20, 7]), 1.0).tolist() == [50, 20, 7]
    assert class_targets(np.array([50, 20, 7]), "max").tolist() == [50, 50, 50]
    assert epoch_indices(LABELS, "none", np.random.default_rng(0)).tolist() == list(range(len(LABELS)))
    with pytest.raises(PipelineError, match="oversample=2"):
        class_targets(np.array([5, 1]), 2)


def test_training_epochs_are_oversampled_and_validation_is_not(tmp_path, monkeypatch):
    paths = [tmp_path / f"{i}.png" for i in range(len(LABELS))]
    for i, p in enumerate(paths):
        write_image(p, seed=i, size=16)
    valid = np.arange(len(LABELS))[np.arange(len(LABELS)) % 5 == 0]
    train = np.setdiff1d(np.arange(len(LABELS)), valid)
    data = FoldData(inputs=Images(ImageCache(paths), "dihedral"), labels=LABELS, train_idx=train, valid_idx=valid,
                    task=CLASSIFICATION)
    seen_valid = []
    real = trainer.validate
    monkeypatch.setattr(trainer, "validate", lambda m, ds, *a: seen_valid.append(len(ds)) or real(m, ds, *a))
    recipe = Recipe(arch="test_efficientnet", weights="none", batch_size=10, oversample="max",
                    phases=(Phase(size=16, epochs=2, lr=1e-3),))
    torch.manual_seed(0)
    fit(create_model("test_efficientnet", 3, "none"), recipe, data, accuracy, tmp_path / "out", key="k",
        dev=Device.pick("cpu"), log=lambda *a: None)
    largest = np.bincount(LABELS[train]).max()
    steps = pd.read_csv(tmp_path / "out" / "steps.csv")
    assert steps.groupby("epoch").size().tolist() == [3 * largest // 10] * 2
    assert seen_valid == [len(valid)] * 2
