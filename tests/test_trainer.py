"""The trainer on a tiny problem: deterministic with a seed, and precompute trains only the head
on activations computed once and shared between folds."""
import torch

from pipeline.metrics import accuracy
from pipeline.models import create_model
from pipeline.recipe import Phase, Recipe
from pipeline import trainer
from pipeline.device import Device
from pipeline.trainer import fit

from conftest import tiny_data


def train(tmp_path, data, recipe, name, cache=None):
    torch.manual_seed(0)
    model = create_model(recipe.arch, 3, recipe.weights)
    fit(model, recipe, data, accuracy, tmp_path / name, key="key", dev=Device.pick("cpu"), symmetry="dihedral",
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


def test_precompute_trains_the_head_on_activations_shared_by_folds(tmp_path, monkeypatch):
    data = tiny_data(tmp_path)
    recipe = Recipe(arch="test_efficientnet", weights="none", batch_size=6,
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
