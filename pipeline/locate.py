"""Find a competition's data: --data, $PIPELINE_DATA/<name>, data/<name>, a Kaggle kernel's input."""
from __future__ import annotations

import os
from pathlib import Path

from . import PipelineError
from .competition import Competition


def kaggle_input_root() -> Path:
    return Path(os.environ.get("PIPELINE_KAGGLE_INPUT", "/kaggle/input"))


def has_data(folder: Path, comp: Competition) -> bool:
    return all((folder / m).exists() for m in comp.layout.markers() + [comp.submission.sample])


def find_data(comp: Competition, data_arg: str | None, workdir: Path) -> Path:
    if data_arg:
        folder = Path(data_arg)
        if not has_data(folder, comp):
            need = ", ".join(comp.layout.markers() + [comp.submission.sample])
            raise PipelineError(f"--data {folder}: not {comp.name}'s data (needs {need}); "
                                f"point it at the folder that holds them")
        return folder
    looked = []
    env = os.environ.get("PIPELINE_DATA")
    candidates = [Path(env) / comp.name] if env else []
    candidates.append(workdir / "data" / comp.name)
    for folder in candidates:
        looked.append(str(folder))
        if has_data(folder, comp):
            return folder
    root = kaggle_input_root()
    if root.is_dir():
        looked.append(str(root))
        # the mount path has changed over the years (/kaggle/input/<slug>, .../competitions/<slug>):
        # search for the competition's files rather than trusting one path
        for folder in sorted(p for depth in ("*", "*/*", "*/*/*") for p in root.glob(depth) if p.is_dir()):
            if has_data(folder, comp):
                return folder
    if comp.make_data is not None:
        folder = workdir / "data" / comp.name
        print(f"writing {comp.name} data to {folder}")
        comp.make_data(folder)
        return folder
    raise PipelineError(
        f"no data for {comp.name} (looked in {', '.join(looked)}): pass --data DIR, set PIPELINE_DATA to a "
        f"folder holding {comp.name}/, or download https://www.kaggle.com/c/{comp.slug}/data "
        f"into data/{comp.name}/")
