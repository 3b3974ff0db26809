"""Tasks are said, not guessed from an array's shape (tasks.py): each owns its targets, loss,
predictions and per-example losses; a regression learns through its transform and range."""
import numpy as np
import pandas as pd
import pytest
import torch

from pipeline import PipelineError
from pipeline.competition import load
from pipeline.core.device import Device
from pipeline.metrics import Metric
from pipeline.training.folds import assign_folds
from pipeline.training.tasks import CLASSIFICATION, MULTILABEL, Regression
from pipeline.training.trainer import fit
from test_seam import MLP, RECIPE, vectors

pytestmark = pytest.mark.quick


def test_a_competition_says_its_task_through_its_layout():
    assert load("digits").task is CLASSIFICATION
    assert load("planet-understanding-the-amazon-from-space").task is MULTILABEL


def test_each_task_encodes_its_targets_and_predicts_its_own_way():
    out = torch.tensor([[2.0, 0.0, -1.0]])
    assert CLASSIFICATION.encode(pd.Series(["b", "a"]), ["a", "b"]).tolist() == [1, 0]
    assert MULTILABEL.encode(pd.Series(["b a", "b"]), ["a", "b"]).tolist() == [[1, 1], [0, 1]]
    torch.testing.assert_close(CLASSIFICATION.predictions(out), out.softmax(1))
    torch.testing.assert_close(MULTILABEL.predictions(out), out.sigmoid())
    # a 1-d float target is a regression's, never taken for class indices
    sales = Regression(transform="log1p", low=0.0, high=1000.0)
    y = sales.encode(pd.Series(["0", "9", "99.0"]))
    assert y.dtype == np.float32 and np.allclose(y, np.log1p([0, 9, 99]))
    assert np.allclose(sales.decode(y), [0, 9, 99], atol=1e-4)
    assert sales.decode(np.array([50.0]))[0] == 1000.0  # clipped into the range
    with pytest.raises(PipelineError, match="not numbers"):
        sales.encode(pd.Series(["1", "x"]))
    with pytest.raises(PipelineError, match="low < high"):
        Regression(low=5.0, high=1.0)


def test_a_regression_output_stays_inside_its_range_and_its_loss_is_squared_error():
    task = Regression(transform="log1p", low=0.0, high=1000.0)
    p = task.predictions(torch.tensor([[-1e4], [0.0], [1e4]]))
    assert p.min() >= 0 and p.max() <= np.log1p(1000.0) + 1e-6 and p[1] == pytest.approx(np.log1p(1000.0) / 2)
    y = torch.tensor([1.0, 2.0, 3.0])
    assert task.loss(torch.zeros(3, 1), y).item() == pytest.approx(((np.log1p(1000.0) / 2 - y.numpy()) ** 2).mean())


def test_regression_folds_are_stratified_by_the_targets_quantiles():
    y = np.random.default_rng(0).lognormal(size=500).astype(np.float32)
    folds = assign_folds(y, 5, 0, None, Regression())
    for k in range(5):  # each fold holds low and high targets alike
        assert np.median(y[folds == k]) == pytest.approx(np.median(y), rel=0.25)


def test_a_regression_trains_through_the_same_fit(tmp_path):
    data = vectors()
    rng = np.random.default_rng(1)
    target = np.exp(4.0 + 0.5 * data.inputs.x[:, 0].numpy() + 0.05 * rng.normal(size=len(data.labels)))  # sales-like, > 0
    task = Regression(transform="log1p", low=0.0, high=float(target.max()) * 2)
    data.labels, data.task, data.classes = task.encode(pd.Series(target)), task, None
    seen = []

    def rmspe(y, p):  # Rossmann's metric, on sales as they are (the task decodes them first)
        seen.append(float(y.max()))
        sold = y > 0  # (as Kaggle scored it: days without sales don't count)
        return float(np.sqrt(np.mean(((y[sold] - p[sold]) / y[sold]) ** 2)))
    torch.manual_seed(0)
    history = fit(MLP(6, 1), RECIPE, data, Metric("rmspe", rmspe, higher_is_better=False), tmp_path, key="k",
                  dev=Device.pick("cpu"), log=lambda *a: None)
    assert max(seen) == pytest.approx(target[data.valid_idx].max(), rel=1e-5)  # sales, not log1p of sales
    assert history["rmspe"].iloc[-1] < 0.5 * history["rmspe"].iloc[0]  # learnt the target
    assert (tmp_path / "swa.pt").exists() and (tmp_path / "hard_negatives.csv").exists()
