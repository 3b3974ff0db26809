"""`pipeline new NAME --layout folders|csv|multilabel|filename`: a competition folder to start
from, holding competition.py (a short definition for that layout, every line commented) and a
README with the commands to download, run and submit. It runs as soon as the data is in place,
if the data follows the layout's usual names; otherwise the comments say which line to change."""
from __future__ import annotations

import re
from pathlib import Path

from pipeline import PipelineError
from pipeline.competition import available
from pipeline.core.files import atomic_path
from pipeline.core.workdir import competition_name

# how a layout's images usually look: photos of any shape (a class per folder, per CSV row, per file
# name), or square tiles tagged with what they show (satellite scenes, cells)
PHOTOS = dict(symmetry="hflip", resize="crop", random_crop=0.75)
TILES = dict(symmetry="dihedral", resize="squash", random_crop=0.0)

# per layout: the import, the layout line, the metric and submission (its columns) the layout usually comes with
LAYOUTS = {
    "folders": dict(
        layout="ClassFolders",
        line='ClassFolders(train_dir="train", test_dir="test", test_id="name")',
        shape="train/<class>/<image>, test/<image>; the submission's ids are the test files' names",
        metric="accuracy", submission='id_column="file", label_column="label"', **PHOTOS),
    "csv": dict(
        layout="LabelsCSV",
        line='LabelsCSV(csv="train.csv", id_column="id", label_column="label", suffix=".jpg")',
        shape="train.csv with columns id,label; train/<id>.jpg, test/<id>.jpg",
        metric="accuracy", submission='id_column="id", label_column="label"', **PHOTOS),
    "multilabel": dict(
        layout="TagsCSV",
        line='TagsCSV(csv="train.csv", id_column="id", label_column="tags", suffix=".jpg")',
        shape='train.csv with columns id,tags (space-separated: "a b"); train/<id>.jpg, test/<id>.jpg',
        metric="f2", submission='id_column="id", label_column="tags"', **TILES),
    "filename": dict(
        layout="FileNames",
        line='FileNames(train_dir="train", test_dir="test")',
        shape="the label in each file's name, up to its first dot: train/cat.1.jpg; test/<id>.jpg",
        metric="accuracy", submission='id_column="id", label_column="label"', **PHOTOS),
}

METRIC_NOTES = {
    "accuracy": "accuracy, micro_f1 or log_loss",
    "f2": "F2 per image, per-class thresholds tuned",
}

DEFINITION = '''\
"""{title}. https://www.kaggle.com/c/{slug}

Data layout: {shape}.
Written by `pipeline new`; see competitions/ for finished examples."""
from pipeline.competition import Submission
from pipeline.layouts import {layout}
from pipeline.metrics import {metric}
from pipeline.recipe import starter
from pipeline.search import Float

slug = "{slug}"  # as in the competition's URL
layout = {line}
classes = None  # None: the sorted training labels; list them to have unknown labels caught
metric = {metric}  # as on the competition's Evaluation page: {metric_note}
# the header of sample_submission.csv: id_column, then label_column holding the class (or tags);
# or label_column with probability_of="class" (binary log loss); or per_class=True (a column per class).
# sample: the sample submission's file in the data folder; with this default, sampleSubmission.csv,
# sample_submission.csv.zip and Kaggle's other spellings are found too (name any other here)
submission = Submission({submission}, sample="sample_submission.csv")
symmetry = "{symmetry}"  # flips that keep a label: "dihedral" (seen from above), "hflip" (photos), "none" (text)
# how an image becomes a square: "squash" (stretched whole), "crop" (the central square; photos),
# "pad" (whole, proportions kept, black bars)
resize = "{resize}"
# random_crop: train on random crops keeping at least this share of each image (photos); 0: none
recipes = starter(size=224, cpu_size=128, symmetry=symmetry, random_crop={random_crop})  # tune: pipeline lr-find, report
# `pipeline tune {name}`: a search around the recipes (phases numbered from 1, as the logs number them)
search = {{
    "phase1.lr": Float(3e-3, 3e-2, log=True),  # the head on cached activations
    "phase2.lr": Float(5e-4, 5e-3, log=True),  # after unfreezing (the body keeps its share of it)
    "label_smoothing": Float(0.0, 0.2),
}}
'''

README = '''\
# {name}

https://www.kaggle.com/c/{slug}; data layout: {shape}.

    pipeline download {name}   # accept the competition's rules on Kaggle first
    pipeline check {name}      # a labelled batch as the model sees it; overfit a few dozen images
    pipeline run {name}        # folds, training, OOF scores, submissions/{name}/cpu.csv (gpu.csv on a GPU)
    pipeline submit {name} -m "first run"
    pipeline report {name}

Check competition.py against the data first: the layout's file and column names, the
metric, and `submission` against the header of sample_submission.csv.
'''


def new(name: str, layout: str, folder: Path, slug: str | None = None) -> Path:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
        raise PipelineError(f"{name!r}: a competition name is lower-case letters, digits, '-' and '_' "
                            f"(Kaggle's slug, e.g. dog-breed-identification)")
    competition_name(name)  # and the length every command checks
    if layout not in LAYOUTS:
        raise PipelineError(f"--layout {layout}: use one of {', '.join(LAYOUTS)}")
    target = folder / name
    if target.exists():
        raise PipelineError(f"{target}: already exists; pick another name or remove it")
    if name in available():
        raise PipelineError(f"competition {name!r} already exists (`pipeline list`); pick another name")
    fields = dict(LAYOUTS[layout], name=name, slug=slug or name, metric_note=METRIC_NOTES[LAYOUTS[layout]["metric"]],
                  title=name.replace("-", " ").replace("_", " ").capitalize())
    target.mkdir(parents=True)
    for file, text in (("competition.py", DEFINITION), ("README.md", README)):
        with atomic_path(target / file) as tmp:
            tmp.write_text(text.format(**fields))
    return target
