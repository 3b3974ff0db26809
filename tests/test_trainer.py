"""The trainer on a tiny problem: deterministic with a seed, and precompute trains only the head
on activations computed once and shared between folds."""
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from pipeline.core.device import Device
from pipeline.metrics import accuracy
from pipeline.recipe import Phase, Recipe
from pipeline.training import batchnorm
from pipeline.training import trainer
from pipeline.training.folds import FoldData
from pipeline.training.models import create_model, freeze, layer_groups
from pipeline.training.tasks import CLASSIFICATION
from pipeline.training.trainer import fit
from pipeline.vision.images import ImageCache
from pipeline.vision.inputs import Images

from conftest import tiny_data


def train(tmp_path, data, recipe, name, cache=None):
    torch.manual_seed(0)
    model = create_model(recipe.arch, 3, recipe.weights)
    fit(model, recipe, data, accuracy, tmp_path / name, key="key", dev=Device.pick("cpu"),
        feature_cache=cache, log=lambda *a: None)
    return model


def test_training_is_deterministic_with_a_seed(tmp_path):
    data = tiny_data(tmp_path)
    recipe = Recipe(arch="test_efficientnet", weights="none", batch_size=6, seed=3,
                    phases=(Phase(size=24, epochs=2, lr=1e-2),))
    a, b = (train(tmp_path, data, recipe, n).state_dict() for n in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = train(tmp_path, data, Recipe(**{**recipe.__dict__, "seed": 4}), "c").state_dict()
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.quick
def test_precompute_trains_the_head_on_activations_shared_by_folds(tmp_path, monkeypatch):
    data = tiny_data(tmp_path)
    recipe = Recipe(arch="test_efficientnet", weights="none", batch_size=6, batchnorm="frozen",
                    phases=(Phase(size=24, epochs=2, lr=1e-2, frozen=("early", "late"), precompute=True),))
    torch.manual_seed(0)
    init = create_model("test_efficientnet", 3, "none").state_dict()
    cache = {}
    model = train(tmp_path, data, recipe, "fold0", cache)
    after = model.state_dict()
    head = {"classifier.weight", "classifier.bias"}
    assert all(torch.equal(init[k], after[k]) for k in init if k not in head)  # body untouched, BN stats too
    assert not torch.equal(init["classifier.weight"], after["classifier.weight"])
    assert list(cache) == [24] and cache[24].shape == (24, model.num_features)

    # a second fold reuses the cached activations instead of running the body again
    calls = []
    real = trainer.body_features
    monkeypatch.setattr(trainer, "body_features", lambda *a: calls.append(1) or real(*a))
    train(tmp_path, data, recipe, "fold1", cache)
    assert calls == []
    train(tmp_path, data, recipe, "fold2", None)  # no cache: computed
    assert calls == [1]


@pytest.mark.quick
def test_adapt_recomputes_batchnorm_statistics_on_the_fold_before_the_head(tmp_path, monkeypatch):
    """batchnorm="adapt": only the running statistics of the body change before the head phase,
    to those of the fold's training images; the activations are then the fold's own, not shared."""
    data = tiny_data(tmp_path)
    recipe = Recipe(arch="test_efficientnet", weights="none", batch_size=6, batchnorm="adapt",
                    phases=(Phase(size=24, epochs=1, lr=1e-2, frozen=("early", "late"), precompute=True),))
    torch.manual_seed(0)
    init = create_model("test_efficientnet", 3, "none").state_dict()
    cache = {}
    after = train(tmp_path, data, recipe, "fold0", cache).state_dict()
    stats = [k for k in init if k.endswith(("running_mean", "running_var"))]
    weights = [k for k in init if k not in stats and not k.startswith("classifier") and "num_batches" not in k]
    assert stats and all(not torch.equal(init[k], after[k]) for k in stats)
    assert all(torch.equal(init[k], after[k]) for k in weights)
    assert cache == {}
    # the stem's statistics are those of the fold's training images, as it normalises them
    x = torch.from_numpy(data.inputs[24][data.train_idx]).permute(0, 3, 1, 2).float() / 255
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))
    stem = torch.nn.functional.conv2d((x - mean) / std, after["conv_stem.weight"], stride=2, padding=1)
    torch.testing.assert_close(after["bn1.running_mean"], stem.mean((0, 2, 3)), rtol=1e-4, atol=1e-4)


@pytest.mark.quick
def test_frozen_batchnorm_keeps_every_layer_on_its_running_statistics():
    model = create_model("test_efficientnet", 3, "none")
    freeze(model, layer_groups(model), ("early",))
    batchnorm.train_mode(model, "batch")
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert any(m.training for m in bns) and not all(m.training for m in bns)  # the frozen group's stay
    batchnorm.train_mode(model, "frozen")
    assert model.training and not any(m.training for m in bns)



def shapes(tmp_path, n=96, size=64) -> FoldData:
    """A disc, a square or a stroke (the class) in its own colour on grey gravel, at a random place."""
    paths = [tmp_path / "shapes" / f"{i}.png" for i in range(n)]
    paths[0].parent.mkdir(parents=True)
    for i, p in enumerate(paths):
        rng = np.random.default_rng(i)
        img = rng.integers(60, 200, (size, size, 3), dtype=np.uint8)
        r, x, y = (int(v) for v in (rng.integers(size // 6, size // 4), *rng.integers(9, size - 9, 2)))
        colour = [(40, 200, 40), (200, 40, 40), (40, 40, 200)][i % 3]
        if i % 3 == 0:
            cv2.circle(img, (x, y), r, colour, -1)
        elif i % 3 == 1:
            cv2.rectangle(img, (x - r, y - r), (x + r, y + r), colour, -1)
        else:
            cv2.line(img, (x - r, y - r), (x + r, y + r), colour, 3)
        cv2.imwrite(str(p), img)
    labels = np.arange(n) % 3
    return FoldData(inputs=Images(ImageCache(paths), "dihedral"), labels=labels,
                    train_idx=np.flatnonzero(np.arange(n) % 4 != 0), valid_idx=np.flatnonzero(np.arange(n) % 4 == 0),
                    task=CLASSIFICATION)


@pytest.mark.quick
@pytest.mark.parametrize("mode", ["adapt", "frozen", "batch"])
def test_the_head_meets_the_features_it_was_fitted_to_when_the_body_starts_training(tmp_path, mode):
    """Issue 17: after a precomputed head, the next phase puts the body in training mode. The
    head's loss on the same training images (no step, no augmentation) must stay near what it
    was on the activations it was fitted to. With fast.ai's BatchNorm ("batch") the body's layers
    switch from pretrained running statistics to batch statistics there and the loss jumps
    several-fold: the drop ants-vs-bees, 62-class characters and plant-seedlings showed."""
    data, bs = shapes(tmp_path), 24
    recipe = Recipe(arch="test_efficientnet", weights="none", batch_size=bs, batchnorm=mode, phases=(
        Phase(size=64, epochs=6, lr=0.3, frozen=("early", "late"), precompute=True),
        Phase(size=64, epochs=1, lr=1e-4, frozen=("early",))))
    model = train(tmp_path, data, replace(recipe, phases=recipe.phases[:1]), mode)
    setup = trainer.setup_phase(model, recipe, 1, data, dev=Device.pick("cpu"))
    rows = np.random.default_rng(0).permutation(data.train_idx)  # batches of mixed classes, as an epoch's
    x, y = torch.from_numpy(data.inputs[64][rows]), torch.from_numpy(data.labels[rows])

    @torch.no_grad()
    def loss():
        return np.mean([CLASSIFICATION.loss(model(setup.prepare(x[i:i + bs])), y[i:i + bs]).item()
                        for i in range(0, len(x), bs)])
    model.eval()
    head = loss()
    setup.train_mode()  # what the trainer sets for phase 2's steps
    body = loss()
    assert head < 0.9 * np.log(3)  # the head learned something to lose
    if mode == "batch":
        assert body > 4 * head
    elif mode == "frozen":
        assert body == pytest.approx(head)
    else:
        assert body < 3 * head and body < 0.5 * np.log(3)
