"""`pipeline new`: a scaffolded competition, for each layout, runs end to end on data in the
layout's usual names, without an edit."""
import re

import pandas as pd
import pytest

from kaggle_layouts import write_jpg
from pipeline.cli import main
from pipeline.competition import load
from pipeline.layouts import FileNames


def write_data(root, layout):
    """8 images in each of 2 classes (tags for multilabel), 3 test images, in the scaffold's default names."""
    rows = []
    for i in range(16):
        label = ("cat", "dog")[i % 2]
        if layout == "folders":
            write_jpg(root / "train" / label / f"{i}.jpg", i, 100 * (i % 2))
        elif layout == "filename":
            write_jpg(root / "train" / f"{label}.{i}.jpg", i, 100 * (i % 2))
        else:
            write_jpg(root / "train" / f"{i}.jpg", i, 100 * (i % 2))
            rows.append((str(i), label + (" indoor" if i % 3 == 0 and layout == "multilabel" else "")))
    if rows:
        pd.DataFrame(rows, columns=["id", "tags" if layout == "multilabel" else "label"]).to_csv(
            root / "train.csv", index=False)
    names = [f"t{i}.jpg" for i in range(3)]
    for i, n in enumerate(names):
        write_jpg(root / "test" / n, 50 + i, 50)
    ids = names if layout == "folders" else [n[:-4] for n in names]
    header = {"folders": ["file", "label"], "multilabel": ["id", "tags"]}.get(layout, ["id", "label"])
    pd.DataFrame({header[0]: ids, header[1]: "cat"}).to_csv(root / "sample_submission.csv", index=False)


@pytest.mark.parametrize("layout", ["folders", "csv", "multilabel", "filename"])
def test_a_scaffolded_competition_runs_as_soon_as_its_data_is_in_place(workdir, layout, capsys):
    name = f"my-{layout}-comp"
    assert main(["new", name, "--layout", layout]) == 0
    folder = workdir / "competitions" / name
    assert (folder / "competition.py").is_file() and f"pipeline run {name}" in (folder / "README.md").read_text()
    comp = load(name)
    assert comp.multilabel == (layout == "multilabel") and comp.slug == name
    photos = layout != "multilabel"  # tagged data is most often tiles (satellite scenes, cells)
    assert comp.resize == ("crop" if photos else "squash") and comp.symmetry == ("hflip" if photos else "dihedral")
    assert all(r.random_crop == (0.75 if photos else 0.0) for r in comp.recipes.values())
    write_data(workdir / "data" / name, layout)
    assert main(["run", name, "--arch", "test_efficientnet", "--weights", "none", "--folds", "2"]) == 0
    sub = pd.read_csv(workdir / "submissions" / name / "cpu.csv", dtype=str)
    sample = pd.read_csv(workdir / "data" / name / "sample_submission.csv", dtype=str)
    assert list(sub.columns) == list(sample.columns) and list(sub.iloc[:, 0]) == list(sample.iloc[:, 0])
    labels = {t for v in sub.iloc[:, 1] for t in v.split()}
    assert labels <= {"cat", "dog", "indoor"}
    assert "classes from the training labels" in capsys.readouterr().out


@pytest.mark.quick
def test_new_refuses_a_taken_name_or_a_bad_one(workdir, capsys):
    assert main(["new", "plant-seedlings", "--layout", "folders"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["new", "Bad Name", "--layout", "csv"]) == 2
    assert "lower-case" in capsys.readouterr().err
    assert main(["new", "x" * 101, "--layout", "csv"]) == 2  # a name every other command would refuse
    assert "at most 100 characters" in capsys.readouterr().err
    assert main(["new", "fresh", "--layout", "csv"]) == 0
    assert main(["new", "fresh", "--layout", "csv"]) == 2
    assert not (workdir / "competitions" / "plant-seedlings").exists()


@pytest.mark.quick
def test_the_definition_shows_the_layout_settings_whose_defaults_fit_some_data_only(workdir, tmp_path):
    for layout in ("csv", "multilabel", "filename"):
        assert main(["new", f"shown-{layout}", "--layout", layout]) == 0
    text = {layout: (workdir / "competitions" / f"shown-{layout}" / "competition.py").read_text()
            for layout in ("csv", "multilabel", "filename")}
    for layout in ("csv", "multilabel"):
        assert 'suffix=".jpg", test_id="stem")' in text[layout] and '# suffix: ' in text[layout]
        assert (load(f"shown-{layout}").layout.suffix, load(f"shown-{layout}").layout.test_id) == (".jpg", "stem")
    assert 'pattern=r"(?P<label>[^.]+)\\.")' in text["filename"] and "cloudy1.jpg" in text["filename"]
    assert load("shown-filename").layout == FileNames()
    # the pattern the comment offers for cloudy1.jpg reads it as cloudy
    offered = re.search(r'need pattern=r"([^"]+)"', text["filename"])[1]
    for name in ("cloudy1.jpg", "cloudy12.jpg", "cat.3.jpg"):
        (tmp_path / "train" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "train" / name).write_bytes(b"")
    assert sorted(FileNames(pattern=offered).train(tmp_path, None)["label"]) == ["cat", "cloudy", "cloudy"]


@pytest.mark.quick
def test_a_label_pattern_that_makes_a_class_of_every_image_is_named_at_the_start(workdir, capsys):
    """cloudy1.jpg read as class "cloudy1" by the default pattern: the folds refuse the run, and
    the notice before them says why."""
    assert main(["new", "weather", "--layout", "filename"]) == 0
    root = workdir / "data" / "weather"
    for i in range(24):
        write_jpg(root / "train" / f"{('cloudy', 'sunny')[i % 2]}{i}.jpg", i, 100 * (i % 2))
    write_jpg(root / "test" / "t0.jpg", 0, 50)
    pd.DataFrame({"id": ["t0"], "label": ["cloudy"]}).to_csv(root / "sample_submission.csv", index=False)
    assert main(["run", "weather", "--arch", "test_efficientnet", "--weights", "none"]) == 2
    out, err = capsys.readouterr()
    assert ("weather: 24 of 24 classes have a single image (cloudy0.jpg is class 'cloudy0'): the layout's pattern "
            'r"(?P<label>[^.]+)\\." likely takes more of each name than its label; set `pattern` in the definition, '
            'e.g. pattern=r"(?P<label>[^\\d.]+)" (the name up to a digit or dot: cloudy0.jpg -> \'cloudy\')') in out
    assert "or more data" in err


@pytest.mark.quick
def test_csv_ids_that_carry_their_suffix_ask_for_suffix_empty(workdir, capsys):
    assert main(["new", "suffixed", "--layout", "csv"]) == 0
    root = workdir / "data" / "suffixed"
    write_data(root, "csv")
    labels = pd.read_csv(root / "train.csv", dtype=str)
    labels["id"] += ".jpg"  # x.jpg, looked for as train/x.jpg.jpg
    labels.to_csv(root / "train.csv", index=False)
    assert main(["run", "suffixed"]) == 2
    err = capsys.readouterr().err
    assert "0.jpg.jpg: listed in" in err and "its id '0.jpg' ends in its suffix already; set suffix=\"\"" in err
    assert "download the competition data again" not in err


@pytest.mark.quick
@pytest.mark.parametrize("change, error", [
    ('metric = f2', "metric 'f2' is for tags per image but the layout has one class"),
    ('submission = Submission(id_column="id")', "needs exactly one of label_column"),
    ('submission = Submission(id_column="id", label_column="label", per_class=True)', "needs exactly one"),
    ('submission = Submission(id_column="id", probability_of="cat")', "needs exactly one"),
    ('submission = Submission(id_column="id", label_column="label", clip=0.5)', "clip=0.5"),
    ('resize = "stretch"', "resize 'stretch'; use one of squash, crop, pad"),
])
def test_a_definition_whose_parts_disagree_is_refused_on_load(workdir, change, error):
    from pipeline import PipelineError
    assert main(["new", "mixed", "--layout", "csv"]) == 0
    definition = workdir / "competitions" / "mixed" / "competition.py"
    definition.write_text(definition.read_text().replace("from pipeline.metrics import accuracy",
                                                         "from pipeline.metrics import accuracy, f2") + change + "\n")
    with pytest.raises(PipelineError, match=error):
        load("mixed")


@pytest.mark.quick
def test_tags_written_with_a_single_class_submission_spec_are_refused(workdir):
    from pipeline import PipelineError
    assert main(["new", "tagged", "--layout", "multilabel"]) == 0
    definition = workdir / "competitions" / "tagged" / "competition.py"
    definition.write_text(definition.read_text() + 'submission = Submission(id_column="id", per_class=True)\n')
    with pytest.raises(PipelineError, match="multi-label submission writes the tags"):
        load("tagged")


@pytest.mark.quick
@pytest.mark.parametrize("dated", [True, False])
def test_a_scaffolded_table_reads_its_columns_from_the_csvs_and_runs(workdir, dated, capsys):
    from table_data import shop
    data = shop(workdir / "data" / "my-shop")
    if not dated:  # no date: stratified folds by the target's range, not time-ordered ones
        for f in ("train.csv", "test.csv"):
            pd.read_csv(data / f).drop(columns="day").to_csv(data / f, index=False)
    assert main(["new", "my-shop", "--layout", "table"]) == 0  # (data/my-shop/ read: no --data needed)
    folder = workdir / "competitions" / "my-shop"
    assert "overfit a few dozen rows" in (folder / "README.md").read_text()
    comp = load("my-shop")
    t, recipe = comp.layout, comp.recipes["cpu"]
    assert comp.table and (t.target, t.id, t.date) == ("takings", "row_id", "day" if dated else None)
    assert t.categorical == ("shop", "offer") and t.continuous == ("price",) and t.transform == "log1p"
    assert comp.submission.id_column == "row_id" and comp.submission.label_column == "takings"
    assert recipe.split == ("time" if dated else "stratified") and recipe.tta == 1
    assert all(p.size is None for p in recipe.phases) and set(comp.search) == {"phase1.lr", "phase1.epochs",
                                                                                "weight_decay"}
    assert main(["run", "my-shop", "--arch", "embeddings-16", "--batch-size", "32"]) == 0
    sub = pd.read_csv(workdir / "submissions" / "my-shop" / "cpu.csv")
    assert list(sub.columns) == ["row_id", "takings"] and len(sub) == 20 and (sub["takings"] > 0).all()
    assert "rmse" in capsys.readouterr().out


@pytest.mark.quick
def test_a_scaffolded_table_finds_its_join_date_and_target_in_rossmann(workdir, tmp_path):
    from table_data import rossmann
    from pipeline.stages.context import start
    data = rossmann(tmp_path / "rossmann")
    assert main(["new", "my-rossmann", "--layout", "table", "--data", str(data)]) == 0
    text = (workdir / "competitions" / "my-rossmann" / "competition.py").read_text()
    assert "train.csv's Customers: not in test.csv, so no feature" in text
    t = load("my-rossmann").layout
    assert (t.target, t.id, t.date, t.join) == ("Sales", "Id", "Date", {"store.csv": "Store"})
    assert {"Store", "DayOfWeek", "StoreType", "PromoInterval"} <= set(t.categorical) and "Customers" not in \
        t.categorical + t.continuous
    r = start("my-rossmann", data=str(data), log=lambda *a: None)
    assert len(r.train) > 100 and r.recipe.split == "time"


@pytest.mark.quick
def test_a_table_scaffolded_without_its_data_loads_with_names_to_fill_in(workdir):
    assert main(["new", "later", "--layout", "table"]) == 0
    text = (workdir / "competitions" / "later" / "competition.py").read_text()
    assert "was not there to read: name them" in text
    comp = load("later")
    assert (comp.layout.target, comp.layout.id, comp.layout.categorical) == ("target", "id", ())
    assert comp.recipes["cpu"].split == "stratified"


@pytest.mark.quick
def test_new_refuses_a_data_folder_it_cannot_read(workdir, capsys):
    (workdir / "somewhere").mkdir()
    assert main(["new", "t1", "--layout", "table", "--data", str(workdir / "somewhere")]) == 2
    assert "read for --layout table only, from its train.csv and test.csv; it holds nothing" in capsys.readouterr().err
    assert main(["new", "t2", "--layout", "csv", "--data", str(workdir)]) == 2
    assert not (workdir / "competitions").exists()
