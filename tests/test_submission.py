import numpy as np
import pandas as pd
import pytest

from pipeline import PipelineError
from pipeline.competition import Submission
from pipeline.core.files import atomic_path
from pipeline.stages import submission as sub
from pipeline.training.tasks import MULTILABEL, Regression

pytestmark = pytest.mark.quick  # every test here: the edit-test loop's tier

SPEC = Submission(id_column="file", label_column="species")
CLASSES = ["a", "b", "c"]


def sample_file(tmp_path, ids, header=("file", "species")):
    f = tmp_path / "sample_submission.csv"
    pd.DataFrame({header[0]: ids, header[1]: "a"}).to_csv(f, index=False)
    return f


def test_submission_follows_the_samples_rows_order_and_header(tmp_path):
    sample = sub.read_sample(sample_file(tmp_path, ["z.png", "x.png", "y.png"]), SPEC, ["x.png", "y.png", "z.png"], CLASSES)
    probs = np.array([[0.9, 0.1, 0], [0.1, 0.8, 0.1], [0, 0.2, 0.8]])  # for x, y, z
    out = sub.build(["x.png", "y.png", "z.png"], probs, CLASSES, sample, SPEC)
    assert list(out.columns) == ["file", "species"]
    assert list(out["file"]) == ["z.png", "x.png", "y.png"]
    assert list(out["species"]) == ["c", "a", "b"]
    sub.validate(out, sample, CLASSES, SPEC)
    sub.write(out, tmp_path / "out" / "run.csv")
    assert pd.read_csv(tmp_path / "out" / "run.csv").equals(out)


def test_validation_catches_wrong_rows_and_labels(tmp_path):
    sample = sub.read_sample(sample_file(tmp_path, ["x.png", "y.png"]), SPEC, ["x.png", "y.png"], CLASSES)
    good = pd.DataFrame({"file": ["x.png", "y.png"], "species": ["a", "b"]})
    with pytest.raises(PipelineError, match="order"):
        sub.validate(good.iloc[::-1].reset_index(drop=True), sample, CLASSES, SPEC)
    with pytest.raises(PipelineError, match="not a class"):
        sub.validate(good.assign(species=["a", "zebra"]), sample, CLASSES, SPEC)
    with pytest.raises(PipelineError, match="header"):
        sub.validate(good.rename(columns={"species": "label"}), sample, CLASSES, SPEC)


def test_sample_whose_ids_do_not_match_the_test_folder(tmp_path):
    f = sample_file(tmp_path, ["x.png", "y.png", "extra.png"])
    with pytest.raises(PipelineError, match=r"sample_submission.csv: its ids don't match.*'extra.png'"):
        sub.read_sample(f, SPEC, ["x.png", "y.png"], CLASSES)
    with pytest.raises(PipelineError, match="1 test images not listed"):
        sub.read_sample(sample_file(tmp_path, ["x.png"]), SPEC, ["x.png", "y.png"], CLASSES)
    with pytest.raises(PipelineError, match="header"):
        sub.read_sample(sample_file(tmp_path, ["x.png"], ("id", "label")), SPEC, ["x.png"], CLASSES)


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "sub.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half a fi")
            raise RuntimeError("killed")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["sub.csv"]


def per_class_sample(tmp_path, ids, columns):
    f = tmp_path / "sample_submission.csv"
    pd.DataFrame({"id": ids, **{c: 1 / len(columns) for c in columns}}).to_csv(f, index=False)
    return f


def test_a_probability_table_follows_the_samples_column_order_and_rows_sum_to_one(tmp_path):
    spec = Submission(id_column="id", per_class=True, clip=0.01)
    sample = sub.read_sample(per_class_sample(tmp_path, ["2", "1"], ["c", "a", "b"]), spec, ["1", "2"], CLASSES)
    probs = np.array([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])  # rows: ids 1, 2; columns: a, b, c
    out = sub.build(["1", "2"], probs, CLASSES, sample, spec)
    assert list(out.columns) == ["id", "c", "a", "b"] and list(out["id"]) == ["2", "1"]
    assert np.allclose(out[["c", "a", "b"]].sum(axis=1), 1)
    assert out.loc[1, "a"] < 1 and out.loc[1, "b"] > 0  # clipped, then renormalised
    assert np.allclose(out.loc[0, ["a", "b", "c"]].astype(float), [0.2, 0.3, 0.5])
    sub.validate(out, sample, CLASSES, spec)
    with pytest.raises(PipelineError, match="sum to"):
        sub.validate(out.assign(c=0.9), sample, CLASSES, spec)


def test_a_probability_table_sample_must_have_a_column_per_class(tmp_path):
    spec = Submission(id_column="id", per_class=True)
    with pytest.raises(PipelineError, match=r"no column for \['c'\]"):
        sub.read_sample(per_class_sample(tmp_path, ["1"], ["a", "b"]), spec, ["1"], CLASSES)


def test_a_binary_probability_is_the_named_class_and_clipped(tmp_path):
    spec = Submission(id_column="id", label_column="label", probability_of="dog", clip=0.005)
    f = tmp_path / "s.csv"
    pd.DataFrame({"id": ["1", "2"], "label": 0.5}).to_csv(f, index=False)
    sample = sub.read_sample(f, spec, ["1", "2"], ["cat", "dog"])
    out = sub.build(["1", "2"], np.array([[1.0, 0.0], [0.3, 0.7]]), ["cat", "dog"], sample, spec)
    assert np.allclose(out["label"], [0.005, 0.7])
    sub.validate(out, sample, ["cat", "dog"], spec)
    with pytest.raises(PipelineError, match=r"not a number in \[0, 1\]"):
        sub.validate(out.assign(label=["0.2", "cat"]), sample, ["cat", "dog"], spec)


def test_tags_are_those_above_their_class_thresholds_and_never_none(tmp_path):
    spec = Submission(id_column="image_name", label_column="tags")
    f = tmp_path / "s.csv"
    pd.DataFrame({"image_name": ["t0", "t1"], "tags": "a"}).to_csv(f, index=False)
    sample = sub.read_sample(f, spec, ["t0", "t1"], CLASSES)
    probs = np.array([[0.6, 0.3, 0.1], [0.1, 0.2, 0.05]])
    out = sub.build(["t0", "t1"], probs, CLASSES, sample, spec, task=MULTILABEL, thresholds=[0.5, 0.25, 0.5])
    assert list(out["tags"]) == ["a b", "b"]  # t1: nothing above its threshold, so the likeliest tag
    sub.validate(out, sample, CLASSES, spec, MULTILABEL)
    with pytest.raises(PipelineError, match="not made of tags"):
        sub.validate(out.assign(tags=["a zebra", "b"]), sample, CLASSES, spec, MULTILABEL)


def test_a_regression_submission_holds_its_predictions_back_in_the_targets_units(tmp_path):
    sample = pd.DataFrame({"Id": ["1", "2", "3"], "Sales": [0, 0, 0]})
    spec, task = Submission(id_column="Id", label_column="Sales"), Regression(transform="log1p", low=0.0, high=1e4)
    logs = np.log1p([[100.0], [0.0], [5e4]])  # as the model predicts them: log1p of sales
    out = sub.build(["3", "2", "1"], logs, None, sample, spec, task=task)  # in the sample's order
    assert list(out["Id"]) == ["1", "2", "3"] and np.allclose(out["Sales"], [1e4, 0.0, 100.0])  # clipped, back
    sub.validate(out, sample, None, spec, task)
    with pytest.raises(PipelineError, match="'lots', not a number"):
        sub.validate(out.assign(Sales=["1", "lots", "2"]), sample, None, spec, task)
