import numpy as np
import pandas as pd
import pytest

from pipeline import PipelineError
from pipeline import submission as sub
from pipeline.competition import Submission
from pipeline.files import atomic_path

SPEC = Submission(id_column="file", label_column="species")
CLASSES = ["a", "b", "c"]


def sample_file(tmp_path, ids, header=("file", "species")):
    f = tmp_path / "sample_submission.csv"
    pd.DataFrame({header[0]: ids, header[1]: "a"}).to_csv(f, index=False)
    return f


def test_submission_follows_the_samples_rows_order_and_header(tmp_path):
    sample = sub.read_sample(sample_file(tmp_path, ["z.png", "x.png", "y.png"]), SPEC, ["x.png", "y.png", "z.png"])
    probs = np.array([[0.9, 0.1, 0], [0.1, 0.8, 0.1], [0, 0.2, 0.8]])  # for x, y, z
    out = sub.build(["x.png", "y.png", "z.png"], probs, CLASSES, sample, SPEC)
    assert list(out.columns) == ["file", "species"]
    assert list(out["file"]) == ["z.png", "x.png", "y.png"]
    assert list(out["species"]) == ["c", "a", "b"]
    sub.validate(out, sample, CLASSES, SPEC)
    sub.write(out, tmp_path / "out" / "run.csv")
    assert pd.read_csv(tmp_path / "out" / "run.csv").equals(out)


def test_validation_catches_wrong_rows_and_labels(tmp_path):
    sample = sub.read_sample(sample_file(tmp_path, ["x.png", "y.png"]), SPEC, ["x.png", "y.png"])
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
        sub.read_sample(f, SPEC, ["x.png", "y.png"])
    with pytest.raises(PipelineError, match="1 test images not listed"):
        sub.read_sample(sample_file(tmp_path, ["x.png"]), SPEC, ["x.png", "y.png"])
    with pytest.raises(PipelineError, match="header"):
        sub.read_sample(sample_file(tmp_path, ["x.png"], ("id", "label")), SPEC, ["x.png"])


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "sub.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half a fi")
            raise RuntimeError("killed")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["sub.csv"]
