import pytest

from pipeline import PipelineError
from pipeline.competition import load
from pipeline.core.workdir import Workdir
from pipeline.kaggle.locate import find_data
from pipeline.stages.context import find_or_fetch

from conftest import make_plant_data


@pytest.mark.quick
def test_data_is_found_in_the_documented_order(workdir, tmp_path, monkeypatch):
    comp, wd = load("plant-seedlings"), Workdir(workdir)
    monkeypatch.setenv("PIPELINE_KAGGLE_ROOT", str(tmp_path / "kaggle"))
    assert find_data(comp, None, wd) is None
    in_kaggle = make_plant_data(tmp_path / "kaggle" / "input" / "competitions" / "plant-seedlings-classification", 1, 1)
    assert find_data(comp, None, wd) == in_kaggle  # searched for, not a hard-coded mount path

    local = make_plant_data(workdir / "data" / "plant-seedlings", 1, 1)
    assert find_data(comp, None, wd) == local

    env = make_plant_data(tmp_path / "shared" / "plant-seedlings", 1, 1)
    monkeypatch.setenv("PIPELINE_DATA", str(tmp_path / "shared"))
    assert find_data(comp, None, wd) == env

    explicit = make_plant_data(tmp_path / "elsewhere", 1, 1)
    assert find_data(comp, str(explicit), wd) == explicit


@pytest.mark.quick
def test_missing_data_says_where_it_looked_and_what_to_do(workdir):
    # no credentials, and Kaggle unreachable: the download fails, and the line says what else to do
    with pytest.raises(PipelineError) as e:
        find_or_fetch(load("plant-seedlings"), None, Workdir(workdir))
    msg = str(e.value)
    assert "data/plant-seedlings" in msg and "PIPELINE_DATA" in msg and "downloading it from Kaggle failed" in msg
    assert "kaggle.com/c/plant-seedlings-classification" in msg and "\n" not in msg


def test_digits_writes_its_own_data(workdir):
    lines = []
    folder = find_or_fetch(load("digits"), None, Workdir(workdir), lines.append)
    assert folder == workdir / "data" / "digits" and lines == [f"writing digits data to {folder}"]
    assert (folder / "sample_submission.csv").exists() and len(list((folder / "train").iterdir())) == 1497
