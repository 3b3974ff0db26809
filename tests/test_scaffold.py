"""`pipeline new`: a scaffolded competition, for each layout, runs end to end on data in the
layout's usual names, without an edit."""
import pandas as pd
import pytest

from kaggle_layouts import write_jpg
from pipeline.cli import main
from pipeline.competition import load


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
