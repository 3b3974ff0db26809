"""`pipeline submit` validates before it sends and records the run; `pipeline submissions` stores
the leaderboard scores in the registry. The real kaggle client, against the stand-in server."""
import json

import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.core.files import file_sha1
from pipeline.core.workdir import Workdir
from pipeline.tracking.registry import read_submissions, record_submissions

pytestmark = pytest.mark.quick  # every test here: the edit-test loop's tier


def a_run(workdir, plant_data, run="cpu", species="Maize"):
    """A finished run's submission file (a valid one unless `species` is not a class), with the
    settings and scores files a finished run leaves beside it."""
    folder = workdir / "data" / "runs" / "plant-seedlings" / run
    folder.mkdir(parents=True)
    sample = pd.read_csv(plant_data / "sample_submission.csv")
    path = workdir / "submissions" / "plant-seedlings" / f"{run}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    sample.assign(species=species).to_csv(path, index=False)
    (folder / "settings.json").write_text('{"recipe": {"tta": 4}}\n')
    made = {"settings.json": file_sha1(folder / "settings.json"), "submission": file_sha1(path)}
    (folder / "scores.json").write_text(json.dumps({"made_from": made}))
    return path


def test_submit_sends_the_file_and_records_the_run_then_scores_are_stored(kaggle, workdir, plant_data, capsys):
    path = a_run(workdir, plant_data)
    assert main(["submit", "plant-seedlings", "-m", "effnet 96px", "--data", str(plant_data)]) == 0
    [sent] = kaggle.submissions
    assert sent["bytes"] == path.read_bytes() and sent["description"] == "effnet 96px"
    assert sent["file_name"] == "cpu.csv"
    assert "#1000" in capsys.readouterr().out

    sent["public"], sent["private"] = "0.95591", "0.94120"  # Kaggle scores it
    a_run(workdir, plant_data, run="gpu")
    kaggle.submissions.append({"ref": 1001, "file_name": "gpu.csv", "description": "from the website",
                               "public": "", "private": ""})
    assert main(["submissions", "plant-seedlings"]) == 0
    out = capsys.readouterr().out
    assert "0.95591" in out and "effnet 96px" in out
    table = read_submissions(Workdir(workdir), "plant-seedlings").set_index("ref")
    assert table.loc[1000, "run"] == "cpu" and table.loc[1000, "public_score"] == pytest.approx(0.95591)
    assert table.loc[1000, "private_score"] == pytest.approx(0.94120) and table.loc[1000, "status"] == "complete"
    assert table.loc[1001, "run"] == "gpu" and pd.isna(table.loc[1001, "public_score"])  # not scored: no number


def test_an_invalid_submission_is_never_sent(kaggle, workdir, plant_data, capsys):
    a_run(workdir, plant_data, species="Dandelion")
    assert main(["submit", "plant-seedlings", "-m", "x", "--data", str(plant_data)]) == 2
    err = capsys.readouterr().err
    assert "cpu.csv: not a valid submission" in err and "Dandelion" in err
    assert kaggle.calls == [] and read_submissions(Workdir(workdir)).empty


def test_a_stale_or_changed_submission_is_never_sent(kaggle, workdir, plant_data, capsys):
    path = a_run(workdir, plant_data)
    settings = workdir / "data" / "runs" / "plant-seedlings" / "cpu" / "settings.json"
    settings.write_text('{"recipe": {"tta": 8}}\n')  # a re-run with other settings, stopped before it wrote its file
    assert main(["submit", "plant-seedlings", "-m", "x", "--data", str(plant_data)]) == 2
    assert "cpu.csv: not sent: the run's latest attempt" in capsys.readouterr().err
    settings.write_text('{"recipe": {"tta": 4}}\n')  # the settings that made the file again...
    path.write_text(path.read_text().replace("Maize", "Charlock"))  # ...but the file was edited since
    assert main(["submit", "plant-seedlings", "-m", "x", "--data", str(plant_data)]) == 2
    assert "cpu.csv: not sent: the file changed after the run wrote it" in capsys.readouterr().err
    assert kaggle.calls == []


@pytest.mark.quick
def test_submit_with_no_runs_says_what_to_run_first(workdir, plant_data, capsys):
    assert main(["submit", "plant-seedlings", "-m", "x", "--data", str(plant_data)]) == 2
    err = capsys.readouterr().err
    assert "no runs of plant-seedlings in " in err and "run `pipeline run plant-seedlings` first" in err
    assert main(["submit", "plant-seedlings", "--run", "gpu", "-m", "x"]) == 2
    assert "run `pipeline run plant-seedlings --run gpu` first" in capsys.readouterr().err
    a_run(workdir, plant_data, run="cpu")
    a_run(workdir, plant_data, run="gpu")
    assert main(["submit", "plant-seedlings", "-m", "x"]) == 2  # which of the two is the user's to say
    assert "2 runs (cpu, gpu); pass --run NAME" in capsys.readouterr().err


def test_registry_merge_keeps_what_a_later_row_leaves_out(workdir):
    record_submissions(Workdir(workdir), [{"competition": "c", "ref": 7, "run": "cpu", "description": "first"}])
    record_submissions(Workdir(workdir), [{"competition": "c", "ref": 7, "run": None, "public_score": "0.9"},
                                 {"competition": "c", "ref": 8, "run": None, "public_score": ""}])
    table = read_submissions(Workdir(workdir), "c").set_index("ref")
    assert table.loc[7, "run"] == "cpu" and table.loc[7, "description"] == "first"
    assert table.loc[7, "public_score"] == 0.9 and len(table) == 2
