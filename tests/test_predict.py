from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.core.device import Device
from pipeline.training.tasks import CLASSIFICATION, MULTILABEL, Regression
from pipeline.vision.images import ImageCache
from pipeline.vision.predict import predict_views
from pipeline.vision.source import ImageSource, prior
from pipeline.vision.transforms import tta_views

from conftest import write_image


class CornerModel(nn.Module):
    """Logits = the top-left pixel's three channels: each flipped view sees a different pixel."""
    pretrained_cfg = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}

    def forward(self, x):
        return x[:, :, 0, 0] * 10


@pytest.mark.quick
def test_tta_views_are_the_dihedral_group():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    views = tta_views(x, 8)
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8
    assert torch.equal(views[0], x) and torch.equal(views[1], x.flip(3))
    assert len(tta_views(x, 2)) == 2


@pytest.mark.quick
def test_tta_averages_probabilities_over_views_and_keeps_the_plain_view():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 6, 6, 3), dtype=np.uint8)
    dev = Device.pick("cpu")
    model = CornerModel()
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    plain_want = (x[:, :, 0, 0] * 10).softmax(1).numpy()
    for n in (1, 2, 4, 8):
        got, plain = predict_views(model, images, n, dev, batch_size=2)
        want = torch.stack([(v[:, :, 0, 0] * 10).softmax(1) for v in tta_views(x, n)]).mean(0)
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got.sum(1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(plain, plain_want, rtol=1e-5, atol=1e-6)  # the "1 view" ingredient
    assert not np.allclose(predict_views(model, images, 1, dev, 2)[0], predict_views(model, images, 4, dev, 2)[0])


@pytest.mark.quick
def test_tags_are_sigmoids_per_tag():
    images = np.random.default_rng(1).integers(0, 256, (3, 4, 4, 3), dtype=np.uint8)
    got, _ = predict_views(CornerModel(), images, 2, Device.pick("cpu"), batch_size=3, task=MULTILABEL)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    want = torch.stack([torch.sigmoid(v[:, :, 0, 0] * 10) for v in tta_views(x, 2)]).mean(0)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)


class Watching(CornerModel):
    """CornerModel, keeping every batch it is shown."""
    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x)
        return super().forward(x)


@pytest.mark.quick
def test_an_unreadable_test_image_is_predicted_from_the_training_labels_in_every_view(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # (the in-memory cache's listing)
    paths = [tmp_path / f"t{i}.png" for i in range(6)]
    for i, p in enumerate(paths):
        write_image(p, seed=i, size=8)
    for i in (1, 4):
        paths[i].write_bytes(b"not an image")
    recipe, dev = SimpleNamespace(tta=2, batch_size=2), Device.pick("cpu")
    targets = {CLASSIFICATION: np.array([0, 0, 1, 2]), MULTILABEL: np.array([[1, 0, 1], [1, 0, 0], [1, 1, 0], [0, 0, 0]])}
    base_rates = {CLASSIFICATION: [0.5, 0.25, 0.25], MULTILABEL: [0.75, 0.25, 0.25]}
    for task, y in targets.items():
        source = ImageSource(ImageCache(paths[:2]), ImageCache(paths, on_unreadable=lambda *a: None), "dihedral",
                             prior(task, y, ["a", "b", "c"]))
        model = Watching()
        views, plain = source.predict(model, {"size": 8}, None, None, recipe, dev, task, "test")
        for p in (views, plain):  # (the views' mean, and the plain view alone: the ingredients of every fold)
            np.testing.assert_allclose(p[[1, 4]], [base_rates[task]] * 2)
            np.testing.assert_allclose(p[[0, 2, 3, 5]], predict_views(CornerModel(), np.asarray(
                source.test_images[8])[[0, 2, 3, 5]], 2, dev, 2, task=task)[p is plain])
        assert sum(len(x) for x in model.seen) == 4 * 2 and all(x.flatten(1).abs().sum(1).all() for x in model.seen)
    assert prior(Regression(), np.array([1.0, 2.0, 6.0], np.float32), None) == 3.0
