"""A fold's ensemble: the snapshots taken at cycle ends (the learning rate's low points), the
SWA and EMA models, and the TTA views, averaged as probabilities; and the score of each
ingredient alone.

Which weights predict: the recipe's `snapshots` (the last N, or some by name), else its single
checkpoint (last or best epoch); plus the SWA model when the recipe averages weights, and the
EMA model when it keeps one.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import torch

from pipeline import PipelineError
from pipeline.core.device import Device
from pipeline.recipe import Recipe
from pipeline.training.averages import MovingAverage, WeightAverage
from pipeline.training.tasks import Task


AVERAGED = {a.file: a.name for a in (WeightAverage, MovingAverage)}  # file -> ingredient name


def snapshots(fold_dir: Path) -> list[Path]:
    """A fold's snapshots in training order."""
    def order(p): return tuple(int(x) for x in re.findall(r"\d+", p.stem))
    return sorted((fold_dir / "snapshots").glob("phase*-epoch*.pt"), key=order)


def members(fold_dir: Path, recipe: Recipe) -> tuple[Path, list[Path]]:
    """The fold's single checkpoint (the baseline) and the weights whose predictions are averaged."""
    base, found = fold_dir / f"{recipe.checkpoint}.pt", snapshots(fold_dir)
    if isinstance(recipe.snapshots, int):
        if recipe.snapshots > len(found):
            raise PipelineError(f"{fold_dir / 'snapshots'}: {len(found)} snapshots "
                                f"({', '.join(p.stem for p in found)}); asked for the last {recipe.snapshots}")
        chosen = found[len(found) - recipe.snapshots:]
    else:
        names = {p.stem: p for p in found}
        missing = [n for n in recipe.snapshots if n.removesuffix(".pt") not in names]
        if missing:
            raise PipelineError(f"{fold_dir / 'snapshots'}: no snapshot {missing[0]!r}; "
                                f"there are {', '.join(names)}")
        chosen = [names[n.removesuffix(".pt")] for n in recipe.snapshots]
    averaged = [fold_dir / a.file for a, kept in ((WeightAverage, recipe.averages_weights),
                                                  (MovingAverage, recipe.ema > 0)) if kept]
    return base, (chosen or [base]) + averaged


def predict_fold(base: Path, members: list[Path], *, source, inputs, valid: np.ndarray, recipe: Recipe, task: Task,
                 dev: Device, desc: str):
    """(OOF predictions per ingredient, the last being what the fold predicts; the ensemble's test
    predictions; predict seconds per member), from the run's `source` (stages/source.py) and the
    fold's `inputs`. Each set of weights predicts once, however many names it has (last.pt is
    also the last snapshot), and only ensemble members predict the test set."""
    preds, seconds = {}, {}
    for path in [base] + members:
        t0 = time.time()
        model, ckpt = source.load(path, inputs, dev)
        same = path.name if path.name in AVERAGED else (ckpt["phase"], ckpt["epoch"])
        if same not in preds:
            preds[same] = {"oof": source.predict(model, ckpt, inputs, valid, recipe, dev, task, f"{desc} OOF {path.stem}")}
        if path in members and "test" not in preds[same]:
            preds[same]["test"] = source.predict(model, ckpt, inputs, None, recipe, dev, task,
                                                 f"{desc} test {path.stem}")[0]
        preds[path] = preds[same]
        seconds[path.stem] = seconds.get(path.stem, 0.0) + time.time() - t0
    plain, views = 1, recipe.tta  # index 1: the plain view alone; 0: the mean over the TTA views
    label = f"{views} view{'s' * (views > 1)}"
    ingredients = {f"{recipe.checkpoint} checkpoint, 1 view": preds[base]["oof"][plain]}
    if views > 1:
        ingredients[f"{recipe.checkpoint} checkpoint, {label}"] = preds[base]["oof"][0]
    snaps = [m for m in members if m.parent.name == "snapshots"]
    if snaps:
        ingredients[f"{len(snaps)} snapshots, 1 view"] = np.mean([preds[m]["oof"][plain] for m in snaps], 0)
    for m in members:
        if m.name in AVERAGED:
            ingredients[f"{AVERAGED[m.name]}, 1 view"] = preds[m]["oof"][plain]
    if members != [base]:
        ingredients[f"ensemble of {', '.join(m.stem for m in members)}, {label}"] = \
            np.mean([preds[m]["oof"][0] for m in members], 0)
    return ingredients, np.mean([preds[m]["test"] for m in members], 0), seconds


def describe(run_dir: Path) -> str:
    """One line per snapshot, SWA and EMA model of every fold: image size and validation scores."""
    lines = []
    for fold_dir in sorted(p for p in run_dir.glob("fold*") if p.is_dir()):
        for path in snapshots(fold_dir) + [p for p in (fold_dir / f for f in AVERAGED) if p.exists()]:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
            scores = "  ".join(f"{k} {v:.4f}" for k, v in ckpt["history"].items()
                               if k not in ("phase", "epoch", "size", "seconds"))
            size = f"{ckpt['size']:>4}px" if ckpt.get("size") else ""
            lines.append(f"  {fold_dir.name}  {path.stem:<16} {size}  {scores}")
    return "\n".join(lines)
