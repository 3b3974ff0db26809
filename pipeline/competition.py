"""A competition is a folder under competitions/ whose competition.py defines plain names:
slug, layout, classes, metric, submission, recipes (and optionally symmetry, references, make_data)."""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import PipelineError
from .metrics import Metric
from .recipe import Recipe
from .transforms import SYMMETRIES

REQUIRED = ("slug", "layout", "classes", "metric", "submission", "recipes")


@dataclass(frozen=True)
class Submission:
    """One predicted class per row: `id_column` holds the test id, `label_column` the class name."""
    id_column: str
    label_column: str
    sample: str = "sample_submission.csv"


@dataclass(frozen=True)
class Competition:
    name: str                  # the folder name, used on the command line
    slug: str                  # Kaggle's competition slug
    layout: Any                # a layout from pipeline.layouts
    classes: list[str]
    metric: Metric
    submission: Submission
    recipes: dict[str, Recipe]  # "cpu" and "gpu" at least; picked by the device unless named
    folder: Path
    symmetry: str = "hflip"    # flips that keep a label: "dihedral", "hflip" or "none" (see transforms)
    make_data: Callable[[Path], None] | None = None  # builds the data itself (no download needed)
    references: dict[str, float] | None = None  # reference scores, e.g. Kaggle's medal thresholds


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
    for d in search_path():
        f = d / name / "competition.py"
        if f.is_file():
            return _from_file(name, f)
    raise PipelineError(f"no competition {name!r}; available: {', '.join(available()) or 'none'} "
                        f"(add competitions/{name}/competition.py to create it)")


def _from_file(name: str, path: Path) -> Competition:
    spec = importlib.util.spec_from_file_location(f"competitions.{name.replace('-', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    missing = [k for k in REQUIRED if not hasattr(module, k)]
    if missing:
        raise PipelineError(f"{path}: defines no {', '.join(missing)}; see competitions/digits for a template")
    fields = {k: getattr(module, k) for k in REQUIRED}
    fields["classes"] = list(fields["classes"])
    if len(set(fields["classes"])) != len(fields["classes"]):
        raise PipelineError(f"{path}: `classes` lists a class twice")
    symmetry = getattr(module, "symmetry", "hflip")
    if symmetry not in SYMMETRIES:
        raise PipelineError(f"{path}: symmetry {symmetry!r}; use one of {', '.join(SYMMETRIES)}")
    references = dict(getattr(module, "references", {}) or {})
    if not all(isinstance(v, (int, float)) for v in references.values()):
        raise PipelineError(f"{path}: `references` maps names to scores, e.g. {{'gold': 0.99}}")
    return Competition(name=name, folder=path.parent, make_data=getattr(module, "make_data", None),
                       symmetry=symmetry, references=references, **fields)
