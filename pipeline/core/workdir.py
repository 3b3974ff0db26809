"""The work folder's layout, in one place; every module asks a `Workdir` where things live.

    data/<competition>/                  the competition's data, downloaded or built
    data/runs/<competition>/<run>/       a run's files (README: What a run leaves behind)
    data/cache/<competition>/            decoded images (a Kaggle kernel: scratch space instead)
    data/registry/runs.parquet           every run, one row per fold (registry.py)
    data/registry/submissions.parquet    Kaggle submissions and their scores
    data/kernels/<competition>/, dataset/  folders for `kaggle kernels push` (kernel.py)
    data/tune/<competition>/<study>.journal  a `pipeline tune` study (tune.py), its .html plots
    submissions/<competition>/<run>.csv  a run's submission

Competition, run and study names are checked (checked_name) before they become paths: no name
reaches outside the work folder.

The work folder is the current one; inside a Kaggle kernel (Kaggle sets KAGGLE_KERNEL_RUN_TYPE)
it is <root>/working, which Kaggle keeps as the kernel's output, and the data is read from
<root>/input. The root is /kaggle; PIPELINE_KAGGLE_ROOT moves it (tests use a temporary folder)."""
from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipeline import PipelineError


RUN_LOCK = "run.lock"  # in a run's folder: held by the process running it (files.held)


def checked_name(name: str, what: str, example: str, longest: int = 100) -> str:
    """A name that becomes a folder or file name in the work folder (a competition's, a run's, a
    study's): no path parts, so nothing it names can land outside the work folder."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name or "") or len(name) > longest:
        raise PipelineError(f"{what} {name!r}: use letters, digits and - _ . (no / or leading dot), "
                            f"at most {longest} characters, e.g. {example}")
    return name


def run_name(name: str) -> str:
    """A run's name as given by --run."""
    return checked_name(name, "run name", "--run lite0-seed2")


def competition_name(name: str) -> str:
    """A competition's name, as on the command line: the name of its folders under data/."""
    return checked_name(name, "competition name", "dog-breed-identification")


def in_kernel() -> bool:
    return "KAGGLE_KERNEL_RUN_TYPE" in os.environ


def kaggle_root() -> Path:
    return Path(os.environ.get("PIPELINE_KAGGLE_ROOT", "/kaggle"))


@dataclass(frozen=True)
class Workdir:
    root: Path

    @classmethod
    def default(cls) -> "Workdir":
        return cls(kaggle_root() / "working" if in_kernel() else Path.cwd())

    def data(self, competition: str) -> Path:
        return self.root / "data" / competition_name(competition)

    def runs(self, competition: str) -> Path:
        return self.root / "data" / "runs" / competition_name(competition)

    def run(self, competition: str, run: str) -> Path:
        return self.runs(competition) / run_name(run)

    def submission(self, competition: str, run: str) -> Path:
        return self.root / "submissions" / competition_name(competition) / f"{run_name(run)}.csv"

    def cache(self, competition: str) -> Path:
        # a kernel keeps all of /kaggle/working as its output: decoded images go to scratch space
        return (Path(tempfile.gettempdir()) if in_kernel() else self.root / "data") / "cache" / competition_name(competition)

    def tune(self, competition: str) -> Path:
        return self.root / "data" / "tune" / competition_name(competition)

    @property
    def runs_table(self) -> Path:
        return self.root / "data" / "registry" / "runs.parquet"

    @property
    def submissions_table(self) -> Path:
        return self.root / "data" / "registry" / "submissions.parquet"

    @property
    def kernels(self) -> Path:
        return self.root / "data" / "kernels"

    def kernel(self, competition: str) -> Path:
        return self.kernels / competition_name(competition)

    def existing_run(self, competition: str, run: str | None) -> Path:
        """A finished or running run's folder: `run` by name, or the only one there is."""
        runs = self.runs(competition)
        found = sorted(p.name for p in runs.glob("*") if p.is_dir())
        if run is None and len(found) == 1:
            run = found[0]
        if not found:
            again = f"pipeline run {competition}" + (f" --run {run}" if run else "")
            raise PipelineError(f"no runs of {competition} in {runs}/: run `{again}` first")
        if run is None:
            raise PipelineError(f"{runs}: {len(found)} runs ({', '.join(found)}); pass --run NAME")
        if run not in found:
            raise PipelineError(f"{runs}: no run {run!r} (runs: {', '.join(found)}); pass --run NAME")
        return runs / run
