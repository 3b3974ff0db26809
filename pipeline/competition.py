"""A competition is a folder under competitions/ whose competition.py defines plain names:
slug, layout, classes, metric, submission, recipes (and optionally symmetry, resize, references, search,
make_data, truncated_images).
`truncated_images` says what becomes of a JPEG cut short (a broken download or copy), whose missing
rows libjpeg would fill with grey: "refuse" (the default: listed with the unreadable images, and the
run stops) or "keep" (trained on as decoded, with a notice naming them).
`pipeline new NAME --layout ...` writes one to start from."""
from __future__ import annotations

import importlib.util
import os
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from pipeline import PipelineError
from pipeline.core.keys import affects
from pipeline.core.workdir import competition_name
from pipeline.labels import discover
from pipeline.metrics import Metric
from pipeline.recipe import Recipe
from pipeline.tables.layout import Table
from pipeline.training.tasks import CLASSIFICATION, MULTILABEL, MultiLabel, Regression, Task, tags
from pipeline.vision.decode import TRUNCATED
from pipeline.vision.images import RESIZE
from pipeline.vision.transforms import SYMMETRIES

REQUIRED = ("slug", "layout", "metric", "submission", "recipes")  # and `classes` for images (None: from the labels)
SAMPLE = "sample_submission.csv"  # the default; Kaggle's other spellings of it are found too (submission.py)


@dataclass(frozen=True)
class Submission:
    """What each row of sample_submission.csv holds for its test id (`id_column`), one of:
    - the predicted class in `label_column` (for tags: those predicted, space-separated)
    - with `probability_of`: that class's probability in `label_column` (binary log loss)
    - with `per_class`: one probability column per class, in the sample's order (multi-class log loss)
    `clip` keeps written probabilities within [clip, 1 - clip]: one confident mistake costs a log
    loss dearly, so Kagglers hedge (rows of a table are then renormalised to sum to 1).
    `sample` is the sample submission's file in the data folder; left as the default, Kaggle's
    other spellings (sampleSubmission.csv, sample_submission.csv.zip, ...) are found as well."""
    id_column: str
    label_column: str | None = None
    probability_of: str | None = None
    per_class: bool = False
    clip: float = 0.0
    sample: str = SAMPLE


@dataclass(frozen=True)
class Competition:
    # affects(...): the stages whose results a setting changes (keys.py); "data": what the layout
    # reads and the images it decodes, fingerprinted as files and labels, not as settings
    name: str = affects()                  # the folder name, used on the command line
    slug: str = affects()                  # Kaggle's competition slug
    layout: Any = affects("data")          # a layout from pipeline.layouts
    classes: list[str] | None = affects("train")  # None: the training labels (or tags), sorted; set by with_classes
    metric: Metric = affects("train", "thresholds")  # the train stage picks best.pt by it
    submission: Submission = affects("submit")
    recipes: dict[str, Recipe] = affects()  # "cpu" and "gpu" at least; picked by the device unless named
    folder: Path = affects()
    symmetry: str = affects("train", default="hflip")  # flips that keep a label: "dihedral", "hflip" or "none" (see transforms)
    resize: str = affects("data", "train", default="squash")  # how an image becomes a square: "squash", "crop" or "pad" (see images)
    preprocess: Callable[[np.ndarray], np.ndarray] | None = affects("data", default=None)  # each decoded image, once (preprocess.py)
    make_data: Callable[[Path], None] | None = affects("data", default=None)  # builds the data itself (no download needed)
    references: dict[str, float] | None = affects(default=None)  # reference scores, e.g. Kaggle's medal thresholds
    search: dict | None = affects(default=None)  # a search space for `pipeline tune` (search.py)
    truncated_images: str = affects("data", default="refuse")  # JPEGs cut short: "refuse" (unreadable) or "keep" (see images)
    features: Callable[[pd.DataFrame], pd.DataFrame] | None = affects("data", default=None)  # a table's own features (tables/layout.py)
    # a table's target range, which the network's output is squashed into (fast.ai's y_range); set
    # from the training targets by with_range
    target_range: tuple[float, float] | None = affects("train", default=None)

    @property
    def table(self) -> bool:
        return isinstance(self.layout, Table)

    @property
    def task(self) -> Task:
        """What the model learns (tasks.py): a table's number, tags when the layout says each image
        has any number of them, else one class."""
        if self.table:
            return Regression(self.layout.transform, *(self.target_range or (None, None)))
        return MULTILABEL if self.layout.multilabel else CLASSIFICATION

    def with_range(self, targets: np.ndarray) -> "Competition":
        """The competition with its target's range set as fast.ai sets y_range: from 0 (or the
        smallest target, if below) to 1.2x the largest, in the scale the network learns (log1p:
        1.2x the largest log), so the squashed output can reach every target seen. It only
        bounds the output, far above what any row reaches, so the validation rows' share in it
        tells the model nothing."""
        low, high = min(0.0, float(np.min(targets))), float(np.max(targets))
        if self.layout.transform == "log1p":
            return replace(self, target_range=(low, float(np.expm1(1.2 * np.log1p(high)))))
        return replace(self, target_range=(low, high + 0.2 * (high - low)))

    @property
    def multilabel(self) -> bool:
        return isinstance(self.task, MultiLabel)

    def with_classes(self, train_labels: pd.Series) -> "Competition":
        """The competition with its classes listed, from the training labels if it leaves them out."""
        if self.classes is not None:
            return self
        return replace(self, classes=discover(train_labels, self.multilabel))

    def require_two_kinds(self, train_labels: pd.Series, data_dir: Path) -> None:
        """Refuse training labels that are all alike (one class; for tags, the same tags on every
        image): the model learns a constant, and scores it perfectly on OOF (an F1 of 1, say)."""
        kinds = {" ".join(sorted(tags(label))) for label in train_labels} if self.multilabel else set(train_labels)
        if len(kinds) > 1:
            return
        alike = (f"has the tags {kinds.pop()!r}; there is nothing to learn" if self.multilabel else
                 f"is labelled {kinds.pop()!r}; a classifier needs at least two classes")
        others = "with other tags" if self.multilabel else "of other classes"
        raise PipelineError(f"{data_dir / self.layout.markers()[0]}: every training image {alike}: point --data "
                            f"at the full data, or add images {others}")

    def unseen_classes(self, train_labels: pd.Series, data_dir: Path) -> list[str]:
        """A line for the start of a run when classes the definition lists have no training image.
        A warning, not an error: a subset of the data is a fair thing to run on, but the model then
        never learns those classes, and the user should know."""
        if self.classes is None:  # taken from the labels: every one has images
            return []
        seen = set(discover(train_labels, self.multilabel))
        unseen = [c for c in self.classes if c not in seen]
        if not unseen:
            return []
        return [f"{data_dir / self.layout.markers()[0]}: only {len(self.classes) - len(unseen)} of the "
                f"{len(self.classes)} classes in {self.folder / 'competition.py'} have training images; "
                f"none for {', '.join(unseen[:5])}{', ...' if len(unseen) > 5 else ''}"]

    def targets(self, labels: pd.Series) -> np.ndarray:
        """What the model learns: class indices, or 0/1 tag rows (labels.py)."""
        return self.task.encode(labels, self.classes)


def search_path() -> list[Path]:
    """Folders holding competition folders: $PIPELINE_COMPETITIONS, ./competitions, the one beside
    this package (a source checkout or editable install) and the one inside it (an installed wheel)."""
    here = Path(__file__).resolve().parent
    dirs = [Path(p) for p in os.environ.get("PIPELINE_COMPETITIONS", "").split(os.pathsep) if p]
    dirs += [Path.cwd() / "competitions", here.parent / "competitions", here / "competitions"]
    return list(dict.fromkeys(d.resolve() for d in dirs if d.is_dir()))


def available() -> list[str]:
    return sorted({p.parent.name for d in search_path() for p in d.glob("*/competition.py")})


def load(name: str) -> Competition:
    competition_name(name)  # it names folders in the work folder: no path parts
    for d in search_path():
        f = d / name / "competition.py"
        if f.is_file():
            return _from_file(name, f)
    raise PipelineError(f"no competition {name!r}; available: {', '.join(available()) or 'none'} "
                        f"(add competitions/{name}/competition.py to create it)")


def _from_file(name: str, path: Path) -> Competition:
    spec = importlib.util.spec_from_file_location(f"competitions.{name.replace('-', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise PipelineError(f"{e.filename}:{e.lineno}: {e.msg}: {(e.text or '').strip()}") from None
    except Exception as e:  # its own code failed: where in the definition, and why
        line = next((f.lineno for f in reversed(traceback.extract_tb(e.__traceback__)) if f.filename == str(path)), "?")
        raise PipelineError(f"{path}:{line}: {type(e).__name__}: {e}") from None
    missing = [k for k in REQUIRED if not hasattr(module, k)]
    if missing:
        raise PipelineError(f"{path}: defines no {', '.join(missing)}; see competitions/digits for a template")
    fields = {k: getattr(module, k) for k in REQUIRED}
    fields["classes"] = getattr(module, "classes", None)
    if "classes" not in vars(module) and not isinstance(fields["layout"], Table):
        raise PipelineError(f"{path}: defines no classes (None: the training labels'); see competitions/digits")
    if fields["classes"] is not None:
        fields["classes"] = list(fields["classes"])
        if len(set(fields["classes"])) != len(fields["classes"]):
            raise PipelineError(f"{path}: `classes` lists a class twice")
    _check_task(path, fields["layout"], fields["metric"], fields["submission"], fields["classes"])
    symmetry = getattr(module, "symmetry", "hflip")
    if symmetry not in SYMMETRIES:
        raise PipelineError(f"{path}: symmetry {symmetry!r}; use one of {', '.join(SYMMETRIES)}")
    resize = getattr(module, "resize", "squash")
    if resize not in RESIZE:
        raise PipelineError(f"{path}: resize {resize!r}; use one of {', '.join(RESIZE)}")
    preprocess = getattr(module, "preprocess", None)
    if preprocess is not None and not callable(preprocess):
        raise PipelineError(f"{path}: `preprocess` is a function from an RGB image to an RGB image, "
                            f"e.g. pipeline.preprocess.green_plants")
    references = dict(getattr(module, "references", {}) or {})
    if not all(isinstance(v, (int, float)) for v in references.values()):
        raise PipelineError(f"{path}: `references` maps names to scores, e.g. {{'gold': 0.99}}")
    truncated = getattr(module, "truncated_images", "refuse")
    if truncated not in TRUNCATED:
        raise PipelineError(f"{path}: truncated_images {truncated!r}; use one of {', '.join(TRUNCATED)}")
    search = getattr(module, "search", None)
    if search is not None and not isinstance(search, dict):
        raise PipelineError(f"{path}: `search` maps setting names to Float(...), Int(...) or Choice(...)")
    features = getattr(module, "features", None)
    if features is not None and not callable(features):
        raise PipelineError(f"{path}: `features` is a function from the joined table (a DataFrame) to it with "
                            f"columns added")
    return Competition(name=name, folder=path.parent, make_data=getattr(module, "make_data", None), features=features,
                       symmetry=symmetry, resize=resize, preprocess=preprocess, references=references, search=search,
                       truncated_images=truncated, **fields)


def _check_task(path: Path, layout, metric: Metric, spec: Submission, classes: list[str] | None) -> None:
    """The layout, metric and submission must agree on the task: one class or tags per image."""
    tags = getattr(layout, "multilabel", False)
    if tags != (metric.threshold is not None):
        raise PipelineError(f"{path}: metric {metric.name!r} is for {'tags' if metric.threshold else 'one class'} "
                            f"per image but the layout has {'tags' if tags else 'one class'}; "
                            f"{'use a thresholded metric such as f2' if tags else 'use e.g. accuracy or log_loss'}")
    if spec.per_class == (spec.label_column is not None) or (spec.probability_of and spec.label_column is None):
        raise PipelineError(f"{path}: `submission` needs exactly one of label_column (the class), label_column "
                            f"with probability_of (a class's probability), or per_class=True")
    if tags and (spec.per_class or spec.probability_of):
        raise PipelineError(f"{path}: a multi-label submission writes the tags in label_column")
    if spec.probability_of is not None and classes is not None and spec.probability_of not in classes:
        raise PipelineError(f"{path}: probability_of={spec.probability_of!r} is not one of the classes")
    if not 0 <= spec.clip < 0.5:
        raise PipelineError(f"{path}: clip={spec.clip} must be in [0, 0.5)")
