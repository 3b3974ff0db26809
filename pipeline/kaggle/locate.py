"""Find a competition's data, without fetching it: --data, $PIPELINE_DATA/<name>, data/<name>,
then a Kaggle kernel's input. Fetching what is found nowhere is the data stage's job (context.py)."""
from __future__ import annotations

import os
from pathlib import Path

from pipeline import PipelineError
from pipeline.competition import Competition
from pipeline.core.workdir import Workdir, kaggle_root
from pipeline.stages.submission import find_sample


def has_data(folder: Path, comp: Competition) -> bool:
    return all((folder / m).exists() for m in comp.layout.markers()) and find_sample(folder, comp.submission) is not None


def search_kaggle_input(comp: Competition) -> Path | None:
    root = kaggle_root() / "input"
    # the mount path has changed over the years (/kaggle/input/<slug>, .../competitions/<slug>):
    # search for the competition's files rather than trusting one path
    for depth in ("*", "*/*", "*/*/*"):
        for folder in sorted(p for p in root.glob(depth) if p.is_dir()):
            if has_data(folder, comp):
                return folder
    return None


def candidates(comp: Competition, workdir: Workdir) -> list[Path]:
    """The folders looked in, in order (a kernel's input is searched after them)."""
    env = os.environ.get("PIPELINE_DATA")
    return ([Path(env) / comp.name] if env else []) + [workdir.data(comp.name)]


def find_data(comp: Competition, data_arg: str | None, workdir: Workdir) -> Path | None:
    """The folder holding the competition's files, or None when it is nowhere. A `--data`
    folder that lacks them is an error: the user named it."""
    if data_arg:
        folder = Path(data_arg)
        if not has_data(folder, comp):
            raise PipelineError(f"--data {folder}: not {comp.name}'s data (needs {', '.join(needed(comp))}); "
                                f"point it at the folder that holds them")
        return folder
    for folder in candidates(comp, workdir):
        if has_data(folder, comp):
            return folder
    return search_kaggle_input(comp)


def needed(comp: Competition) -> list[str]:
    return comp.layout.markers() + [comp.submission.sample]


def not_found(comp: Competition, workdir: Workdir) -> str:
    """Where we looked and what a user can do, for the error when data is found nowhere."""
    looked = ", ".join(map(str, candidates(comp, workdir) + [kaggle_root() / "input"]))
    return (f"no data for {comp.name} (looked in {looked}): pass --data DIR, set PIPELINE_DATA to a folder "
            f"holding {comp.name}/, or download https://www.kaggle.com/c/{comp.slug}/data into "
            f"{workdir.data(comp.name)}/")
