"""Diagnostics from predictions the test controls: the confusion matrix, per-class table and
most confused pairs are right, the top-loss grid shows the worst predictions, and every plot
is a valid PNG."""
import numpy as np
import pandas as pd
import pytest

from pipeline.stages.diagnostics import confusion, smooth, top_losses, training_curves
from pipeline.training.tasks import CLASSIFICATION

pytestmark = pytest.mark.quick  # every test here: the edit-test loop's tier

PNG = b"\x89PNG\r\n\x1a\n"


def test_confusion_per_class_and_most_confused_pairs(tmp_path):
    classes = ["a", "b", "c"]
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    pred = np.array([0, 0, 1, 1, 1, 1, 1, 2, 0, 1])
    probs = np.eye(3)[pred] * 0.8 + 0.2 / 3
    pairs = confusion(labels, probs, classes, tmp_path)
    cm = pd.read_csv(tmp_path / "confusion.csv")
    assert list(cm.columns) == ["true", "a", "b", "c"] and list(cm["true"]) == classes
    assert cm[classes].to_numpy().tolist() == [[2, 2, 0], [0, 3, 0], [1, 1, 1]]
    assert pairs.iloc[0].tolist() == ["a", "b", 2] and len(pairs) == 3
    per = pd.read_csv(tmp_path / "per_class.csv").set_index("class")
    assert per.loc["b", "recall"] == 1.0 and per.loc["b", "precision"] == 0.5 and per.loc["a", "support"] == 4
    assert (tmp_path / "confusion.png").read_bytes()[:8] == PNG


def test_top_losses_are_the_lowest_probabilities_of_the_true_class(tmp_path):
    labels = np.array([0, 1, 0, 1, 0])
    p_true = np.array([0.9, 0.2, 0.05, 0.6, 0.4])
    probs = np.stack([np.where(labels == 0, p_true, 1 - p_true), np.where(labels == 1, p_true, 1 - p_true)], 1)
    images = np.random.default_rng(0).integers(0, 255, (7, 8, 8, 3), dtype=np.uint8)
    rows = top_losses(images, np.array([6, 5, 4, 3, 2]), labels, probs, np.array(list("vwxyz")), ["cat", "dog"],
                      tmp_path / "top.png", CLASSIFICATION, n=3)
    assert list(rows["id"]) == ["x", "w", "z"] and list(rows["predicted"]) == ["dog", "cat", "dog"]
    assert np.allclose(rows["loss"], -np.log([0.05, 0.2, 0.4]))
    assert (tmp_path / "top.png").read_bytes()[:8] == PNG


def drawn_titles_and_images(monkeypatch, draw) -> list:
    """The window extents of every title and every image of the figures `draw()` saves, as
    matplotlib's renderer lays them out in the PNG."""
    from pipeline.core import plots
    boxes, save = [], plots.save_png

    def measured(fig, path):
        fig.canvas.draw()  # at the dpi save_png writes (100), laid out as in the file
        renderer, axes = fig.canvas.get_renderer(), [ax for ax in fig.axes if ax.images]
        boxes.append((fig.bbox, [ax.title.get_window_extent(renderer) for ax in axes],
                      [ax.get_window_extent(renderer) for ax in axes]))
        save(fig, path)
    monkeypatch.setattr(plots, "save_png", measured)
    draw()
    return boxes


@pytest.mark.parametrize("multilabel", [False, True])
def test_top_loss_titles_fit_clear_of_the_images_and_of_each_other(tmp_path, monkeypatch, multilabel):
    from pipeline.training.tasks import MultiLabel
    rng, n = np.random.default_rng(0), 20
    images = rng.integers(0, 255, (n, 64, 64, 3), dtype=np.uint8)
    ids = np.array([f"{rng.integers(1e9):09x}_{i}.png" for i in range(n)])
    if multilabel:  # many long tags: the longest titles
        classes = [f"tag_{w}" for w in ("agriculture", "artisinal_mine", "bare_ground", "blooming", "cloudy",
                                        "conventional_mine", "cultivation", "habitation")]
        labels = (rng.random((n, len(classes))) < 0.5).astype(np.float32)
        probs, task, thresholds = rng.random((n, len(classes))), MultiLabel(), np.full(len(classes), 0.5)
    else:
        classes = ["Black-grass", "Common Chickweed", "Small-flowered Cranesbill", "Loose Silky-bent"]
        labels, task, thresholds = rng.integers(0, len(classes), n), CLASSIFICATION, None
        probs = rng.dirichlet(np.ones(len(classes)), n)
    [(page, titles, pictures)] = drawn_titles_and_images(monkeypatch, lambda: top_losses(
        images, np.arange(n), labels, probs, ids, classes, tmp_path / "top.png", task, thresholds))
    assert len(titles) == 16
    for i, title in enumerate(titles):
        assert page.x0 <= title.x0 and title.x1 <= page.x1 and page.y0 <= title.y0 and title.y1 <= page.y1
        assert not any(title.overlaps(p) for p in pictures), f"title {i} runs into an image"
        assert not any(title.overlaps(t) for t in titles[:i]), f"title {i} runs into another"


def test_training_curves_from_a_folds_logs(tmp_path):
    fold = tmp_path / "run" / "fold0"
    fold.mkdir(parents=True)
    steps = pd.DataFrame({"phase": [0] * 6 + [1] * 4, "epoch": [0, 0, 0, 1, 1, 1, 0, 0, 1, 1],
                          "step": [0, 1, 2, 3, 4, 5, 0, 1, 2, 3], "lr": np.linspace(1e-4, 1e-3, 10),
                          "momentum": 0.9, "loss": np.linspace(2, 0.5, 10)})
    steps.to_csv(fold / "steps.csv", index=False)
    pd.DataFrame({"phase": [0, 0, 1, 1], "epoch": [0, 1, 0, 1], "size": [32, 32, 48, 48],
                  "train_loss": [1.8, 1.4, 1.0, 0.7], "valid_loss": [1.5, 1.2, 0.9, 0.8],
                  "accuracy": [0.5, 0.6, 0.7, 0.75], "seconds": 1.0}).to_csv(fold / "history.csv", index=False)
    training_curves(fold, "accuracy", tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG
    assert np.allclose(smooth(np.full(5, 3.0)), 3.0)  # bias-corrected: a constant stays itself
