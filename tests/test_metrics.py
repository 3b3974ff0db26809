"""Metrics as Kaggle computes them, against scikit-learn; per-class threshold tuning."""
import numpy as np
import pytest
from sklearn.metrics import fbeta_score, log_loss as sk_log_loss

from pipeline.metrics import f2, log_loss, mean_fbeta
from pipeline.stages.thresholds import tune
from pipeline.training.tasks import MULTILABEL, decide


def random_probs(rng, n, c):
    p = rng.random((n, c)) + 0.05
    return p / p.sum(1, keepdims=True)


@pytest.mark.quick
def test_log_loss_matches_sklearn_multiclass_and_binary():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 5, 200), random_probs(rng, 200, 5)
    assert log_loss(y, p) == pytest.approx(sk_log_loss(y, p, labels=range(5)), rel=1e-12)
    y2, p2 = rng.integers(0, 2, 100), random_probs(rng, 100, 2)
    assert log_loss(y2, p2) == pytest.approx(sk_log_loss(y2, p2[:, 1]), rel=1e-12)
    assert not log_loss.higher_is_better and log_loss.better(0.1, 0.2)


@pytest.mark.quick
def test_log_loss_clips_and_renormalises_as_kaggle_does():
    # a certain, wrong answer costs -log(1e-15), not infinity
    assert log_loss(np.array([0]), np.array([[0.0, 1.0]])) == pytest.approx(-np.log(1e-15))
    # rows need not sum to one: each is divided by its sum first
    assert log_loss(np.array([1]), np.array([[2.0, 2.0]])) == pytest.approx(np.log(2))


@pytest.mark.quick
def test_f2_matches_sklearn_samples_average():
    rng = np.random.default_rng(1)
    y = (rng.random((300, 17)) < 0.2).astype(np.float32)
    y[y.sum(1) == 0, 0] = 1  # every image has a tag, as on planet
    p = np.clip(y * 0.6 + rng.random(y.shape) * 0.5, 0, 1)
    pred = decide(p, 0.2)
    assert mean_fbeta(y, pred) == pytest.approx(fbeta_score(y, pred, beta=2, average="samples"), rel=1e-12)
    assert f2(y, p) == pytest.approx(fbeta_score(y, pred, beta=2, average="samples"), rel=1e-12)
    t = rng.random(17)
    assert f2(y, p, t) == pytest.approx(fbeta_score(y, decide(p, t), beta=2, average="samples"), rel=1e-12)


@pytest.mark.quick
def test_decide_keeps_the_likeliest_tag_when_none_passes():
    assert decide(np.array([[0.1, 0.3, 0.2]]), 0.5).tolist() == [[False, True, False]]


@pytest.mark.quick
def test_tuning_finds_each_class_threshold_on_predictions_the_test_controls():
    """Class c's positives score in [t_c, 1], its negatives below t_c - 0.03: any threshold in
    between is perfect, and the default 0.2 is wrong for every class but the first."""
    rng = np.random.default_rng(2)
    true_t = np.array([0.2, 0.5, 0.7, 0.35, 0.9, 0.1])
    y = (rng.random((2000, 6)) < 0.3).astype(np.float32)
    y[y.sum(1) == 0, rng.integers(0, 6, (y.sum(1) == 0).sum())] = 1
    p = np.where(y > 0, true_t + rng.random(y.shape) * (1 - true_t), rng.random(y.shape) * (true_t - 0.03))
    tuned = tune(y, p, f2)
    for c in range(6):
        below, above = p[y[:, c] == 0, c].max(), p[y[:, c] > 0, c].min()
        assert below < tuned[c] <= above, (c, below, tuned[c], above)
    assert f2(y, p, tuned) == pytest.approx(1.0)
    assert f2(y, p) < 0.95


@pytest.mark.quick
def test_tuning_leaves_a_threshold_alone_without_a_strict_gain():
    y = np.array([[1, 0], [0, 1]], np.float32)
    p = np.array([[0.9, 0.0], [0.0, 0.9]])
    assert tune(y, p, f2).tolist() == [0.2, 0.2]


@pytest.mark.quick
def test_example_losses_for_tags_are_the_mean_binary_cross_entropy():
    y = np.array([[1, 0]], np.float32)
    p = np.array([[0.8, 0.4]])
    assert MULTILABEL.example_losses(y, p)[0] == pytest.approx(-(np.log(0.8) + np.log(0.6)) / 2)
