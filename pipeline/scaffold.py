"""`pipeline new NAME --layout folders|csv|multilabel|filename|table`: a competition folder to start
from, holding competition.py (a short definition for that layout, every line commented) and a
README with the commands to download, run and submit. It runs as soon as the data is in place,
if the data follows the layout's usual names; otherwise the comments say which line to change.
A table's columns are filled in from its CSVs when they are there already (tables/guess.py)."""
from __future__ import annotations

import json
import re
from pathlib import Path

from pipeline import PipelineError
from pipeline.competition import Submission, available
from pipeline.core.files import atomic_path
from pipeline.core.workdir import Workdir, competition_name
from pipeline.layouts import LETTERS, FileNames
from pipeline.stages.submission import find_sample
from pipeline.tables.guess import guess

# how a layout's images usually look: photos of any shape (a class per folder, per CSV row, per file
# name), or square tiles tagged with what they show (satellite scenes, cells)
PHOTOS = dict(symmetry="hflip", resize="crop", random_crop=0.75)
TILES = dict(symmetry="dihedral", resize="squash", random_crop=0.0)

# per layout: the import, comment lines on the settings whose defaults fit some data and not other, the
# layout line, the metric and submission (its columns) the layout usually comes with
IDS_NOTE = ("# suffix: added to an id to find its image (\"\" when the CSV's ids end in it already: x.jpg);\n"
            "# test_id: the submission's ids are the test files' \"stem\"s (x) or \"name\"s (x.jpg)\n")
LAYOUTS = {
    "folders": dict(
        layout="ClassFolders", note="",
        line='ClassFolders(train_dir="train", test_dir="test", test_id="name")',
        shape="train/<class>/<image>, test/<image>; the submission's ids are the test files' names",
        metric="accuracy", submission='id_column="file", label_column="label"', **PHOTOS),
    "csv": dict(
        layout="LabelsCSV", note=IDS_NOTE,
        line='LabelsCSV(csv="train.csv", id_column="id", label_column="label", suffix=".jpg", test_id="stem")',
        shape="train.csv with columns id,label; train/<id>.jpg, test/<id>.jpg",
        metric="accuracy", submission='id_column="id", label_column="label"', **PHOTOS),
    "multilabel": dict(
        layout="TagsCSV", note=IDS_NOTE,
        line='TagsCSV(csv="train.csv", id_column="id", label_column="tags", suffix=".jpg", test_id="stem")',
        shape='train.csv with columns id,tags (space-separated: "a b"); train/<id>.jpg, test/<id>.jpg',
        metric="f2", submission='id_column="id", label_column="tags"', **TILES),
    "filename": dict(
        layout="FileNames",
        note=("# pattern: a regular expression whose group \"label\" finds the label in a training file's name;\n"
              "# this one takes the name up to its first dot (cat.1.jpg: cat). Names numbered without a dot\n"
              f"# (cloudy1.jpg: cloudy) need pattern=r\"{LETTERS}\", the name up to a digit or dot\n"),
        line=f'FileNames(train_dir="train", test_dir="test", pattern=r"{FileNames.pattern}")',
        shape="the label in each file's name, up to its first dot: train/cat.1.jpg; test/<id>.jpg",
        metric="accuracy", submission='id_column="id", label_column="label"', **PHOTOS),
}

TABLE_SHAPE = "train.csv (the target among its columns), test.csv (an id per row), sample_submission.csv"
LAYOUT_NAMES = (*LAYOUTS, "table")

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
{note}layout = {line}
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
# the recipes are sized to the images when a run starts: their own size (up to the model's), epochs from
# their number, the cpu recipe's within `minutes` on a 2-core CPU; size=224, cpu_size=128 would fix them
recipes = starter(symmetry=symmetry, random_crop={random_crop}, minutes=10)  # tune: pipeline lr-find, report
# `pipeline tune {name}`: a search around the recipes (phases numbered from 1, as the logs number them)
search = {{
    "phase1.lr": Float(3e-3, 3e-2, log=True),  # the head on cached activations
    "phase2.lr": Float(5e-4, 5e-3, log=True),  # after unfreezing (the body keeps its share of it)
    "label_smoothing": Float(0.0, 0.2),
}}
'''

TABLE_DEFINITION = '''\
"""{title}. https://www.kaggle.com/c/{slug}

Data layout: {shape}.
Written by `pipeline new`; see competitions/rossmann-store-sales for a finished example.{read}"""
from pipeline.competition import Submission
from pipeline.metrics import rmse
from pipeline.recipe import Phase, Recipe
from pipeline.search import Float, Int
from pipeline.tables.layout import Table

slug = "{slug}"  # as in the competition's URL
layout = Table(
    train="train.csv", test="test.csv",  # the data folder's files
    join={join},  # other CSVs joined on a column of train.csv, e.g. {{"store.csv": "Store"}}
{train_only}    target="{target}",  # the column to predict: in train.csv only
    id="{id}",  # test.csv's id column: a submission row each
    date={date},  # a date column (None: none): its parts become columns, and the folds follow it
    group=None,  # with events: the column whose values keep a calendar each (a store)
    events=(),  # columns marking days (a promo, a holiday): days since the last and until the next per group
    # each value of a categorical column learns an embedding (codes, ids, weekdays, years, yes/no);
    # continuous ones are numbers, filled where missing and normalised (distances, prices){unread}
    categorical={categorical},
    continuous={continuous},
    skip=None,  # training rows not to learn from, a pandas query, e.g. "Sales <= 0"
    known={{}},  # test rows whose answer is known: query -> answer, e.g. {{"Open == 0": 0}}
    transform={transform},  # "log1p": learnt as log(1 + target) (counts, sales, prices: >= 0); None: as it is
)
# as on the competition's Evaluation page: rmse (in the target's units), or rmspe (the percentage
# error, over the rows whose target is not 0; from pipeline.metrics, as Rossmann's)
metric = rmse
# the header of sample_submission.csv: the id, then the answer
submission = Submission(id_column="{id}", label_column="{target}", sample="sample_submission.csv")
# the entity-embeddings network (pipeline/tables/model.py): trained from scratch, a row has no
# test-time views. Folds: {folds_note}
_recipe = Recipe(arch="embeddings", weights="none", batch_size=512, weight_decay=0.2, tta=1,
                 split="{split}", folds={folds}, train_folds=({train_fold},), phases=(Phase(epochs=4, lr=3e-3),))
recipes = {{"cpu": _recipe, "gpu": _recipe}}  # tune: pipeline check, lr-find, report
# `pipeline tune {name}`: a search around the recipe (phases numbered from 1, as the logs number them)
search = {{
    "phase1.lr": Float(1e-3, 1e-2, log=True),
    "phase1.epochs": Int(3, 6),
    "weight_decay": Float(0.01, 0.3, log=True),
}}
'''

FOLDS = {
    "time": dict(folds=3, train_fold=2, folds_note="three blocks of the test period's length, the last ending where "
                 "the\n# training data ends; fold 2 (the competition's own split) trains on the rows before it"),
    "stratified": dict(folds=5, train_fold=0, folds_note="five, by the target's range; fold 0 trains on the others"),
}

README = '''\
# {name}

https://www.kaggle.com/c/{slug}; data layout: {shape}.

    pipeline download {name}   # accept the competition's rules on Kaggle first
    pipeline check {name}      # {check}
    pipeline run {name}        # folds, training, OOF scores, submissions/{name}/cpu.csv (gpu.csv on a GPU)
    pipeline submit {name} -m "first run"
    pipeline report {name}

Check competition.py against the data first: the layout's file and column names, the
metric, and `submission` against the header of sample_submission.csv.
'''
CHECKS = {"images": "a labelled batch as the model sees it; overfit a few dozen images",
          "table": "the columns as the model sees them; overfit a few dozen rows"}


def new(name: str, layout: str, folder: Path, slug: str | None = None, data: Path | None = None) -> Path:
    """competitions/<name>/ for `layout`; a table's columns read from its CSVs when they are in
    `data` (default: data/<name>/ of the work folder)."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
        raise PipelineError(f"{name!r}: a competition name is lower-case letters, digits, '-' and '_' "
                            f"(Kaggle's slug, e.g. dog-breed-identification)")
    competition_name(name)  # and the length every command checks
    if layout not in LAYOUT_NAMES:
        raise PipelineError(f"--layout {layout}: use one of {', '.join(LAYOUT_NAMES)}")
    if data is not None and (layout != "table" or not all((data / f).is_file() for f in ("train.csv", "test.csv"))):
        raise PipelineError(f"--data {data}: read for --layout table only, from its train.csv and test.csv"
                            + ("" if layout != "table" else "; neither is there" if not data.is_dir() else
                               f"; it holds {', '.join(sorted(p.name for p in data.iterdir())[:8]) or 'nothing'}"))
    target = folder / name
    if target.exists():
        raise PipelineError(f"{target}: already exists; pick another name or remove it")
    if name in available():
        raise PipelineError(f"competition {name!r} already exists (`pipeline list`); pick another name")
    common = dict(name=name, slug=slug or name, title=name.replace("-", " ").replace("_", " ").capitalize())
    if layout == "table":
        fields = dict(table_fields(data or Workdir.default().data(name)), **common, shape=TABLE_SHAPE,
                      check=CHECKS["table"])
        definition = TABLE_DEFINITION
    else:
        fields = dict(LAYOUTS[layout], **common, metric_note=METRIC_NOTES[LAYOUTS[layout]["metric"]],
                      check=CHECKS["images"])
        definition = DEFINITION
    target.mkdir(parents=True)
    for file, text in (("competition.py", definition), ("README.md", README)):
        with atomic_path(target / file) as tmp:
            tmp.write_text(text.format(**fields))
    return target


def table_fields(data: Path) -> dict:
    """The table definition's blanks: guessed from the CSVs in `data` (tables/guess.py), or
    placeholders to fill in."""
    sample = find_sample(data, Submission(id_column="id", label_column="target"))
    g = guess(data, sample=sample)
    read = f"\nThe columns are guessed from the CSVs in {data}: check them." if g.read else ""
    unread = "" if g.read else "\n    # (the data's train.csv was not there to read: name them, and the target and id)"
    train_only = f"    # train.csv's {', '.join(g.train_only)}: not in test.csv, so no feature\n" if g.train_only else ""
    join = "{" + ", ".join(f"{_py(f)}: {_py(k)}" for f, k in g.join.items()) + "}"
    return dict(target=g.target, id=g.id, date=_py(g.date), join=join, train_only=train_only, read=read,
                unread=unread, categorical=_names(g.categorical, len("    categorical=(")),
                continuous=_names(g.continuous, len("    continuous=(")),
                transform=_py(None if g.negative else "log1p"), split="time" if g.date else "stratified",
                **FOLDS["time" if g.date else "stratified"])


def _py(value: str | None) -> str:
    """A string as Python in double quotes, as the definitions spell them; None as None."""
    return "None" if value is None else json.dumps(value)


def _names(columns: list[str], indent: int, width: int = 110) -> str:
    """A tuple of column names as Python, its lines wrapped at `width` and continued `indent`
    spaces in (under its opening parenthesis)."""
    items = [_py(c) for c in columns]
    if len(items) < 2:
        return f"({items[0]},)" if items else "()"
    lines, line = [], ""
    for i, item in enumerate(items):
        piece = item + (", " if i < len(items) - 1 else ")")
        if line and indent + len(line) + len(piece) > width:
            lines.append(line.rstrip())
            line = ""
        line += piece
    return "(" + ("\n" + " " * indent).join(lines + [line])
