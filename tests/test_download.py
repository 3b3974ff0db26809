"""`pipeline download` through the real kaggle client, against the stand-in server on 127.0.0.1:
safe extraction, nothing half-extracted after a broken transfer, a second call skipped, --force,
and one clear line for each error a user meets."""
import errno
import importlib
import io
import json
import os
import zipfile
from pathlib import Path

import pytest

from pipeline import PipelineError
from pipeline.cli import main
from pipeline.competition import load
from pipeline.core.workdir import Workdir
from pipeline.kaggle import api as kaggle_api
from pipeline.kaggle.locate import find_data
from pipeline.stages.context import find_or_fetch

from conftest import make_plant_data
from kaggle_standin import KEY, TOKEN, USER

pytestmark = pytest.mark.quick  # every test here: the edit-test loop's tier

SLUG = "plant-seedlings-classification"


def zip_folder(folder, skip=(), extra=()) -> bytes:
    """The folder as Kaggle ships plant-seedlings, train/ packed in an inner train.zip; `extra`
    adds (name, bytes) entries to the outer archive."""
    inner, outer = io.BytesIO(), io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        for p in sorted((folder / "train").rglob("*.png")):
            z.write(p, p.relative_to(folder).as_posix())
    with zipfile.ZipFile(outer, "w") as z:
        z.writestr("train.zip", inner.getvalue())
        for p in sorted(folder.rglob("*")):
            name = p.relative_to(folder).as_posix()
            if p.is_file() and not name.startswith("train/") and name not in skip:
                z.write(p, name)
        for name, data in extra:
            z.writestr(name, data)
    return outer.getvalue()


@pytest.fixture
def kaggle(kaggle, tmp_path, monkeypatch):
    kaggle.archives[SLUG] = zip_folder(make_plant_data(tmp_path / "kaggle-side", 2, 3))
    # the client waits 2, 4, 8... seconds between retries of a broken transfer
    monkeypatch.setattr(importlib.import_module("kaggle.api.kaggle_api_extended").time, "sleep", lambda s: None)
    return kaggle


def error_of(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the client's progress bar
    assert err.startswith("pipeline: error:")
    return err


def leftovers(workdir) -> list[str]:
    return sorted(p.name for p in (workdir / "data").iterdir() if p.name.startswith(".") and "extracting" in p.name)


def test_download_extracts_everything_then_skips_then_forces(kaggle, workdir):
    assert main(["download", "plant-seedlings"]) == 0
    data = workdir / "data" / "plant-seedlings"
    assert len(list((data / "train").rglob("*.png"))) == 24 and len(list((data / "test").glob("*.png"))) == 3
    assert not list(data.rglob("*.zip")) and (data / "download.json").exists()
    assert find_data(load("plant-seedlings"), None, Workdir(workdir)) == data
    assert sorted(p.name for p in (workdir / "data").iterdir()) == ["plant-seedlings"]  # no staging left

    calls = len(kaggle.calls)
    assert main(["download", "plant-seedlings"]) == 0
    assert len(kaggle.calls) == calls  # recorded as downloaded: not even a request

    kaggle.archives[SLUG] = zip_folder(workdir.parent / "kaggle-side", skip=("test/t0002.png",))
    assert main(["download", "plant-seedlings", "--force"]) == 0
    assert len(kaggle.calls) > calls and len(list((data / "test").glob("*.png"))) == 2


@pytest.mark.parametrize("source", ["environment", "kaggle.json", "access token", "access token file"])
def test_credentials_from_every_place_kaggle_documents(kaggle, workdir, monkeypatch, source):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    config = Path(os.environ["KAGGLE_CONFIG_DIR"]) / "kaggle.json"  # fixed when kaggle was imported
    if source == "environment":
        monkeypatch.setenv("KAGGLE_USERNAME", USER)
        monkeypatch.setenv("KAGGLE_KEY", KEY)
    elif source == "kaggle.json":
        config.write_text(json.dumps({"username": USER, "key": KEY}))
        config.chmod(0o600)
    elif source == "access token":
        monkeypatch.setenv("KAGGLE_API_TOKEN", TOKEN)
    else:
        token = Path(os.environ["HOME"]) / ".kaggle" / "access_token"
        token.parent.mkdir(parents=True)
        token.write_text(TOKEN)
    try:
        assert main(["download", "plant-seedlings"]) == 0
    finally:
        config.unlink(missing_ok=True)
    assert (workdir / "data" / "plant-seedlings" / "download.json").exists()


def test_rejected_credentials_say_so(kaggle, workdir, monkeypatch, capsys):
    monkeypatch.setenv("KAGGLE_KEY", "an-old-key")
    assert "rejected the credentials" in error_of(capsys, ["download", "plant-seedlings"])


def test_run_downloads_missing_data(kaggle, workdir):
    comp = load("plant-seedlings")
    assert find_data(comp, None, Workdir(workdir)) is None  # it only looks
    assert find_or_fetch(comp, None, Workdir(workdir)) == workdir / "data" / "plant-seedlings"
    assert find_data(comp, None, Workdir(workdir)) == workdir / "data" / "plant-seedlings"


@pytest.mark.parametrize("where", ["outer", "inner"])
def test_archive_entry_escaping_the_folder_is_refused(kaggle, workdir, capsys, where):
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../../evil.txt", "owned")
    name = "../evil.txt" if where == "outer" else "extra.zip"
    kaggle.archives[SLUG] = zip_folder(workdir.parent / "kaggle-side", extra=[(name, evil.getvalue()
                                                                                if where == "inner" else "owned")])
    err = error_of(capsys, ["download", "plant-seedlings"])
    assert "evil.txt" in err and "refused" in err
    assert not list(workdir.parent.rglob("evil.txt"))
    assert not (workdir / "data" / "plant-seedlings").exists() and not leftovers(workdir)


def test_interrupted_download_leaves_nothing_half_extracted_and_resumes(kaggle, workdir, capsys):
    kaggle.break_off = True
    err = error_of(capsys, ["download", "plant-seedlings"])
    assert "broke off" in err and "again" in err
    assert not (workdir / "data" / "plant-seedlings").exists() and not leftovers(workdir)
    kaggle.break_off = False
    assert main(["download", "plant-seedlings"]) == 0
    assert len(list((workdir / "data" / "plant-seedlings" / "train").rglob("*.png"))) == 24


def test_bad_archive_is_an_error_not_a_partial_dataset(kaggle, workdir, capsys):
    kaggle.archives[SLUG] = b"PK\x03\x04 this is not really a zip archive" * 100
    err = error_of(capsys, ["download", "plant-seedlings"])
    assert "not a valid zip" in err
    assert not (workdir / "data" / "plant-seedlings").exists() and not leftovers(workdir)
    assert not list((workdir / "data").rglob("*.zip"))  # the bad archive is not kept to fail again


def test_each_error_is_one_line_saying_what_to_do(kaggle, workdir, capsys, monkeypatch):
    kaggle.not_joined.add(SLUG)
    assert f"kaggle.com/c/{SLUG}/rules" in error_of(capsys, ["download", "plant-seedlings"])
    kaggle.not_joined.clear()

    with monkeypatch.context() as m:
        m.setattr("pipeline.kaggle.download.shutil.disk_usage", lambda p: type("Usage", (), {"free": 1000})())
        assert "free some space" in error_of(capsys, ["download", "plant-seedlings"])

    with pytest.raises(PipelineError, match=r"disk full writing /data/x\.zip; free some space"):
        with kaggle_api.errors(SLUG, "downloading"):  # what the client re-raises when a write fails
            raise OSError(errno.ENOSPC, "No space left on device", "/data/x.zip")

    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there: offline
    assert "cannot reach Kaggle" in error_of(capsys, ["download", "plant-seedlings"])

    monkeypatch.delenv("KAGGLE_USERNAME")
    assert "kaggle.json" in error_of(capsys, ["download", "plant-seedlings"])
    assert not (workdir / "data" / "plant-seedlings").exists()



def test_7z_archives_inside_the_download_are_one_line_saying_how_to_unpack(kaggle, workdir, capsys):
    """planet ships its images as train-jpg.tar.7z beside train_v2.csv.zip: the zips are extracted,
    and the 7z archives are named with the command that unpacks them."""
    slug = "planet-understanding-the-amazon-from-space"
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w") as z:
        for name, text in (("train_v2.csv", "image_name,tags\ntrain_0,clear primary\n"),
                           ("sample_submission_v2.csv", "image_name,tags\ntest_0,clear\n")):
            inner = io.BytesIO()
            with zipfile.ZipFile(inner, "w") as zi:
                zi.writestr(name, text)
            z.writestr(f"{name}.zip", inner.getvalue())
        z.writestr("train-jpg.tar.7z", b"7z\xbc\xaf\x27\x1c")
    kaggle.archives[slug] = outer.getvalue()
    err = error_of(capsys, ["download", slug])
    assert "7z archives (train-jpg.tar.7z)" in err and "7z x FILE.tar.7z && tar xf FILE.tar" in err
    data = workdir / "data" / slug
    assert (data / "train_v2.csv").is_file() and (data / "train-jpg.tar.7z").is_file()
