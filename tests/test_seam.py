"""The trainer takes any kind of data that supplies what inputs.py asks: here rows of numbers (no
images, no timm model) through the same `fit` as images, a precomputed head, SGDR, mining, SWA and
the EMA included; and the modules that train name no image type."""
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.core.device import Device
from pipeline.metrics import accuracy
from pipeline.recipe import Phase, Recipe, mining_round, swa_round
from pipeline.tables.inputs import Rows
from pipeline.training.folds import FoldData
from pipeline.training.tasks import CLASSIFICATION
from pipeline.training.trainer import fit
import pipeline

pytestmark = pytest.mark.quick


class Vectors:
    """A kind of data that is not images: a float vector per example, jittered when augmented."""

    def __init__(self, x: np.ndarray):
        self.x = torch.as_tensor(x, dtype=torch.float32)

    def dataset(self, rows, labels, phase, recipe, dev, augment=None):
        x = self.x[rows]
        if augment is not None:
            x = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(augment))
        return Rows(x, None if labels is None else torch.as_tensor(labels[rows]))

    def placer(self, model, dev):
        dev.place(model)
        return lambda x, flips=None: x.to(dev.device)

    def on_device(self, prepare, seed, dev):
        return prepare


class MLP(nn.Module):
    """A small network with the hooks the trainer uses: stages to group, a body's pooled features, a classifier."""

    def __init__(self, inputs: int, classes: int):
        super().__init__()
        self.stem = nn.Linear(inputs, 32)
        self.blocks = nn.Sequential(nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU())
        self.classifier = nn.Linear(32, classes)
        self.num_classes = classes

    def group_matcher(self, coarse: bool = False) -> dict:
        return {"stem": r"^stem", "blocks": r"^blocks"}

    def forward_features(self, x):
        return self.blocks(self.stem(x))

    def forward_head(self, x, pre_logits: bool = False):
        return x if pre_logits else self.classifier(x)

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def vectors(n: int = 120, d: int = 6) -> FoldData:
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 3
    x = rng.normal(size=(n, d)) + 2.0 * np.eye(3, d)[labels]  # three separable clouds
    return FoldData(inputs=Vectors(x), labels=labels, train_idx=np.flatnonzero(np.arange(n) % 4),
                    valid_idx=np.flatnonzero(np.arange(n) % 4 == 0), ids=np.arange(n).astype(str),
                    classes=["a", "b", "c"], task=CLASSIFICATION)


RECIPE = Recipe(arch="mlp", weights="none", batch_size=16, ema=0.9, phases=(
    Phase(size=6, epochs=2, lr=3e-2, frozen=("early", "late"), precompute=True),
    Phase(size=6, epochs=3, lr=(1e-3, 3e-3, 1e-2), schedule="sgdr", cycle_len=1, cycle_mult=2),
    mining_round(Phase(size=6, epochs=1, lr=1e-2), fraction=0.2),
    swa_round(Phase(size=6, epochs=1, lr=1e-2), epochs=2)))


def train(out: Path) -> tuple[nn.Module, list]:
    torch.manual_seed(0)
    model = MLP(6, 3)
    history = fit(model, RECIPE, vectors(), accuracy, out, key="k", dev=Device.pick("cpu"), log=lambda *a: None)
    return model, history


def test_a_kind_of_data_that_is_not_images_trains_through_the_same_fit(tmp_path):
    model, history = train(tmp_path / "a")
    assert [f.name for f in sorted(tmp_path.glob("a/*.pt"))] == ["best.pt", "ema.pt", "last.pt", "swa.pt"]
    assert (tmp_path / "a" / "hard_negatives.csv").exists() and len(list(tmp_path.glob("a/snapshots/*.pt"))) >= 3
    assert history["accuracy"].iloc[-1] > 0.8  # three separable clouds: learnt, not chance (1/3)
    again, _ = train(tmp_path / "b")  # and seeded like images: the same weights again
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_the_modules_that_train_name_no_image_type():
    root = Path(pipeline.__file__).parent / "training"
    for module in sorted(p.name for p in root.glob("*.py")):  # every module of the trainer's package
        text = (root / module).read_text()
        named = re.findall(r"\b(ImageDataset|ImageCache|symmetry|transforms|train_augment|random_flips|to_input)\b", text)
        assert not named, f"{module} names {sorted(set(named))}"
