"""Find a competition's data: --data, $PIPELINE_DATA/<name>, data/<name>, a Kaggle kernel's input,
and, failing those, download it (outside a kernel) or build it (digits).

Inside a Kaggle kernel (Kaggle sets KAGGLE_KERNEL_RUN_TYPE) the data is read from <root>/input,
runs and submissions go to <root>/working, and nothing needs the network. The root is /kaggle;
PIPELINE_KAGGLE_ROOT moves it (tests use a temporary folder)."""
from __future__ import annotations

import os
from pathlib import Path

from . import PipelineError
from .competition import Competition


def in_kernel() -> bool:
    return "KAGGLE_KERNEL_RUN_TYPE" in os.environ


def kaggle_root() -> Path:
    return Path(os.environ.get("PIPELINE_KAGGLE_ROOT", "/kaggle"))


def default_workdir() -> Path:
    """Where data/ and submissions/ live: the kernel's writable output folder, else the current one."""
    return kaggle_root() / "working" if in_kernel() else Path.cwd()


def has_data(folder: Path, comp: Competition) -> bool:
    return all((folder / m).exists() for m in comp.layout.markers() + [comp.submission.sample])


def search_kaggle_input(comp: Competition) -> Path | None:
    root = kaggle_root() / "input"
    # the mount path has changed over the years (/kaggle/input/<slug>, .../competitions/<slug>):
    # search for the competition's files rather than trusting one path
    for depth in ("*", "*/*", "*/*/*"):
        for folder in sorted(p for p in root.glob(depth) if p.is_dir()):
            if has_data(folder, comp):
                return folder
    return None


def find_data(comp: Competition, data_arg: str | None, workdir: Path, fetch: bool = True) -> Path:
    """The folder holding the competition's files. With `fetch`, data found nowhere is built
    (`make_data`) or downloaded from Kaggle into data/<name>/ (never inside a kernel)."""
    if data_arg:
        folder = Path(data_arg)
        if not has_data(folder, comp):
            need = ", ".join(comp.layout.markers() + [comp.submission.sample])
            raise PipelineError(f"--data {folder}: not {comp.name}'s data (needs {need}); "
                                f"point it at the folder that holds them")
        return folder
    env = os.environ.get("PIPELINE_DATA")
    candidates = ([Path(env) / comp.name] if env else []) + [workdir / "data" / comp.name]
    for folder in candidates:
        if has_data(folder, comp):
            return folder
    found = search_kaggle_input(comp)
    if found is not None:
        return found
    looked = ", ".join(map(str, candidates + [kaggle_root() / "input"]))
    local = workdir / "data" / comp.name
    if fetch and comp.make_data is not None:
        print(f"writing {comp.name} data to {local}")
        comp.make_data(local)
        return local
    if in_kernel():
        raise PipelineError(f"no data for {comp.name} under {kaggle_root() / 'input'}: kernels have no network; "
                            f"attach the competition (Add Input -> Competitions -> {comp.slug}) and run again")
    manual = (f"pass --data DIR, set PIPELINE_DATA to a folder holding {comp.name}/, or download "
              f"https://www.kaggle.com/c/{comp.slug}/data into data/{comp.name}/")
    if not fetch:
        raise PipelineError(f"no data for {comp.name} (looked in {looked}): {manual}")
    from .download import download
    try:
        return download(comp, local)
    except PipelineError as e:
        raise PipelineError(f"no data for {comp.name} (looked in {looked}) and downloading it failed: {e}; "
                            f"or {manual}") from None
