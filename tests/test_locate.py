import pytest

from pipeline import PipelineError
from pipeline.competition import load
from pipeline.locate import find_data

from conftest import make_plant_data


def test_data_is_found_in_the_documented_order(workdir, tmp_path, monkeypatch):
    comp = load("plant-seedlings")
    monkeypatch.setenv("PIPELINE_KAGGLE_ROOT", str(tmp_path / "kaggle"))
    in_kaggle = make_plant_data(tmp_path / "kaggle" / "input" / "competitions" / "plant-seedlings-classification", 1, 1)
    assert find_data(comp, None, workdir) == in_kaggle  # searched for, not a hard-coded mount path

    local = make_plant_data(workdir / "data" / "plant-seedlings", 1, 1)
    assert find_data(comp, None, workdir) == local

    env = make_plant_data(tmp_path / "shared" / "plant-seedlings", 1, 1)
    monkeypatch.setenv("PIPELINE_DATA", str(tmp_path / "shared"))
    assert find_data(comp, None, workdir) == env

    explicit = make_plant_data(tmp_path / "elsewhere", 1, 1)
    assert find_data(comp, str(explicit), workdir) == explicit


def test_missing_data_says_where_it_looked_and_what_to_do(workdir):
    with pytest.raises(PipelineError) as e:
        find_data(load("plant-seedlings"), None, workdir)
    msg = str(e.value)
    assert "data/plant-seedlings" in msg and "PIPELINE_DATA" in msg
    assert "kaggle.com/c/plant-seedlings-classification" in msg and "\n" not in msg


def test_digits_writes_its_own_data(workdir):
    folder = find_data(load("digits"), None, workdir)
    assert folder == workdir / "data" / "digits"
    assert (folder / "sample_submission.csv").exists() and len(list((folder / "train").iterdir())) == 1497
