"""The stage engine: `stage` runs a stage unless the manifest (stages.json) says it already ran with
the same key and its outputs exist; `holding` keeps the run's folder for one process and records
how it ended; `record` writes the registry row; `settings` is what settings.json holds."""
from __future__ import annotations

import os
import platform
import socket
import time
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from pipeline import PipelineError
from pipeline.competition import load
from pipeline.core.files import held, is_held, read_json, write_json
from pipeline.core.workdir import RUN_LOCK, Workdir
from pipeline.recipe import SETTINGS, Recipe
from pipeline.stages.context import Run, resolve_recipe
from pipeline.tracking import registry


def stage(r: Run, name: str, key: str, outputs: list[Path], fn: Callable[[], None], alone: bool = False,
          intact: Callable[[], bool] = lambda: True) -> None:
    """Run `fn` unless the manifest says it already ran with this key, its outputs exist and are
    `intact()`.
    Every rank runs it (each stage decides what a rank does), or rank 0 `alone`; rank 0 records
    it, and the ranks leave together. Whether it runs is rank 0's word: a rank that arrives late
    would find rank 0's record of this very stage and skip it, leaving the others waiting."""
    manifest_file = r.run_dir / "stages.json"
    manifest = read_json(manifest_file, {})
    r.keys[name] = key
    done = manifest.get(name, {})
    if r.ranks.broadcast(done.get("key") == key and all(p.exists() for p in outputs) and intact()):
        r.log(f"[{name}] up to date, skipped")
        r.times[name] = 0.0
        return
    r.log(f"[{name}]")
    t0 = time.time()
    if r.ranks.main or not alone:
        fn()
    r.times[name] = time.time() - t0
    manifest[name] = {"key": key, "seconds": round(r.times[name], 1)}
    if r.ranks.main:
        write_json(manifest_file, manifest)
    r.ranks.barrier()


@contextmanager
def holding(r: Run):
    """The run folder's lock, held by rank 0 while the run (or its lr-find) works: a second
    process on the same run name refuses in one line instead of mixing its files with ours."""
    with ExitStack() as stack:
        error = None
        if r.ranks.main:
            holder = f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"
            try:
                stack.enter_context(held(r.run_dir / RUN_LOCK, holder))
            except PipelineError as e:
                error = (f"run {r.name!r} ({r.run_dir}) is {e}; wait for it to end, or pass another "
                         f"--run NAME")
        error = r.ranks.broadcast(error)
        if error:
            raise PipelineError(error)
        yield


def record(r: Run, status: str, result: dict | None = None) -> None:
    """Registry rows for this run. Stage seconds are those each stage took when it last ran (a
    skipped stage's work was done earlier), so the wall time is what the result cost."""
    seconds = {"data": round(r.times.get("data", 0.0), 1)}
    seconds |= {name: s["seconds"] for name, s in read_json(r.run_dir / "stages.json", {}).items()}
    registry.record_run(r.workdir, settings(r), run_dir=r.run_dir, metric=r.comp.metric, stage_seconds=seconds,
                        status=status, folds=result and result["folds"], oof=result and result["oof"])


def record_refused(comp_name: str, error: Exception, *, workdir: Workdir | None = None, run: str | None = None,
                   recipe: Recipe | str | None = None, device: str = "auto", data: str | None = None,
                   assignments: Sequence[str] = (), **given) -> None:
    """The registry row of a run that `start` refused (settings the recipe cannot take, data
    missing or disagreeing with its sample): `failed: <the error's first line>`, with what it was
    given (the recipe's name, the command line's settings; the recipe resolved when that much
    worked, else {}). Rank 0's; none when nothing names a run of a known competition (no such
    competition, a run name that cannot be one), nor while another process runs that name (the
    row is its own). Whatever goes wrong here, the run's own error is the one said."""
    if os.environ.get("RANK", "0") != "0":
        return
    workdir = workdir or Workdir.default()
    try:
        comp = load(comp_name)
        cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        default = "custom" if isinstance(recipe, Recipe) else recipe or ("gpu" if cuda else "cpu")
        name = default if run is None else run
        run_dir = workdir.run(comp.name, name)  # (a name that cannot be a run's: refused, no row)
    except Exception:
        return
    if is_held(run_dir / RUN_LOCK):
        return
    overrides = {k: v for k, v in given.items() if k in {s.name for s in SETTINGS} and v is not None}
    try:  # the refusal may be the settings' own
        resolved = asdict(resolve_recipe(comp, recipe, cuda, overrides, assignments)[0])
    except Exception:
        resolved = {}
    said = str(error).splitlines()[0] if str(error) else type(error).__name__
    known = {"competition": comp.name, "slug": comp.slug, "run": name, "recipe_name": default,
             "recipe": resolved, "given": {**overrides, "set": list(assignments)}, "data_dir": data,
             "device": device, "versions": versions()}
    run_dir.mkdir(parents=True, exist_ok=True)  # (as a run's own: the report says a missing one was deleted)
    registry.record_run(workdir, known, run_dir=run_dir, metric=comp.metric, stage_seconds={},
                        status=f"failed: {said}")


def settings(r: Run) -> dict:
    return {"competition": r.comp.name, "slug": r.comp.slug, "run": r.name, "recipe_name": r.recipe_name,
            "recipe": asdict(r.recipe), "data_dir": str(r.data_dir), "device": str(r.dev.device),
            "amp": str(r.dev.amp_dtype), "compile": r.dev.compile, "ranks": r.ranks.world, "parallel": r.parallel,
            "sync_bn": r.sync_bn, "train_images": len(r.train), "test_images": len(r.test), "versions": versions()}


def versions() -> dict:
    """What the numbers depend on beyond the settings: the same recipe trains differently (and at
    another speed) under another torch."""
    return {"python": platform.python_version(), "torch": torch.__version__, "timm": version("timm"),
            "numpy": np.__version__, "albumentations": version("albumentations")}
