"""The folds and train stages of `pipeline run`: each image's fold (folds.csv), and each fold
trained through the shared trainer (trainer.fit) unless it is trained already with the same key
and its weights load; `pipeline lr-find` under a phase's exact conditions."""
from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from pipeline import PipelineError
from pipeline.core.files import files_fingerprint, fingerprint, read_json, write_csv, write_json
from pipeline.core.keys import settings_for
from pipeline.stages import ensemble
from pipeline.stages.context import Run, say
from pipeline.stages.engine import holding, stage
from pipeline.stages.images import images_stage, kept_together
from pipeline.tables import trees
from pipeline.training.checkpoints import snapshot_name, unloadable
from pipeline.training.folds import FoldData, assign_folds, time_folds, training_rows
from pipeline.training.lr_find import plot
from pipeline.training.trainer import fit, phase_range_test


def folds_stage(r: Run) -> np.ndarray:
    """Each training image's fold (folds.csv), split once per data, fold count and seed, and
    groups of near duplicates (images.py): found again, and different, they split it again."""
    groups = None if r.comp.table else images_stage(r)  # (a table's rows are not images)

    def split():
        if not r.ranks.main:
            return
        if r.recipe.split == "time":
            if not hasattr(r.source, "days"):
                raise PipelineError(f"split 'time' needs dated rows (a table with a `date`); "
                                    f"{r.comp.name} has none: use --split stratified")
            days, horizon = r.source.days()
            folds = time_folds(days, r.recipe.folds, horizon)
        else:
            folds = assign_folds(r.targets, r.recipe.folds, r.recipe.seed, r.comp.classes, r.comp.task, groups)
        write_csv(r.run_dir / "folds.csv", pd.DataFrame({"id": r.train["id"], "label": r.train["label"], "fold": folds}))
        if groups is not None:
            r.log(kept_together(r))
    together = [] if groups is None else [groups.tolist()]  # (none: the key, and the folds, as before them)
    stage(r, "folds", fingerprint(r.keys["data"], settings_for(r.recipe, "folds"), *together),
          [r.run_dir / "folds.csv"], split)
    return read_folds(r)


def read_folds(r: Run) -> np.ndarray:
    folds = pd.read_csv(r.run_dir / "folds.csv", dtype={"id": str, "label": str})
    if list(folds["id"]) != list(r.train["id"]):
        raise PipelineError(f"{r.run_dir / 'folds.csv'}: ids differ from the training data; delete it to re-split")
    return folds["fold"].to_numpy()


def train_key(r: Run, k: int) -> str:
    """Fold k's training: its folds, and every recipe and competition setting that says it
    affects training (keys.py); a weights file by its contents' fingerprint, not its name."""
    recipe = settings_for(r.recipe, "train")
    if Path(r.recipe.weights).is_file():
        recipe["weights"] = files_fingerprint([Path(r.recipe.weights)])
    return fingerprint(r.keys["folds"], k, recipe, settings_for(r.comp, "train"), r.comp.multilabel)


def own_folds(r: Run) -> list[int]:
    """The folds this process trains and predicts: all of them, or under --parallel folds every
    world-th, from its rank (each rank has its own device)."""
    folds = r.recipe.fold_list()
    return folds[r.ranks.rank::r.ranks.world] if r.parallel == "folds" else folds


def train_stage(r: Run, folds: np.ndarray) -> None:
    r.source.prepare(r.recipe)
    features: dict = {}  # body activations of the untouched pretrained body, shared by folds
    log = functools.partial(say, f"[rank {r.ranks.rank}]") if r.parallel == "folds" else r.log  # (its own folds)
    for k in own_folds(r):
        key = train_key(r, k)
        done = r.fold_dir(k) / "done.json"
        if fold_trained(r, k, log):
            log(f" fold {k}: trained, skipped")
            continue
        if r.dev.group.main:  # (training it again: killed half way, it must not pass for done)
            done.unlink(missing_ok=True)
        log(f" fold {k} of {r.recipe.folds}")
        data = fold_data(r, folds, k)
        if r.recipe.boosted:
            if r.dev.group.main:  # (under --parallel data every rank would grow the same trees)
                boost(r, data, r.fold_dir(k), log)
        else:
            for line in one_step_epochs(r.recipe.batch_size, len(data.train_idx), k):
                log(line)
            model = fresh_model(r, data.inputs)
            fit(model, r.recipe, data, r.comp.metric, r.fold_dir(k), key=key, dev=r.dev,
                feature_cache=features, log=log, on_epoch=r.on_epoch)
        if r.dev.group.main:  # (the fold's one writer: rank 0, or under --parallel folds its owner)
            write_json(done, {"key": key})


def boost(r: Run, data: FoldData, out: Path, log: Callable) -> None:
    """A fold's gradient-boosted trees (tables/trees.py), stopped on the last block of its own
    training rows and refitted on all of them; its validation rows are scored as a network's."""
    days, horizon = r.source.days() if r.recipe.split == "time" else (None, None)
    stopping = trees.stopping_rows(data.train_idx, days, horizon, r.recipe.seed)
    trees.fit_fold(r.recipe.trees, data.inputs, data.labels, stopping, data.train_idx, r.comp.task, r.comp.classes,
                   r.recipe.seed, out, log)


def one_step_epochs(batch_size: int, images: int, k: int) -> list[str]:
    """A line when the batch takes up a fold's training images in one step an epoch (a batch
    never spans the epoch's end, as epochs.epoch_loader builds them): a handful of steps in all,
    with no word of it. The suggestion is a power of two that gives a few steps an epoch."""
    if images >= 2 * batch_size:
        return []
    smaller = 2 ** int(np.log2(max(1, images // 4)))
    return [f"  batch size {batch_size} for fold {k}'s {images} training images trains one step an epoch; "
            f"--batch-size {smaller} gives {images // smaller}"]


def fold_trained(r: Run, k: int, log: Callable | None = None) -> bool:
    """Fold k was trained with these settings (its done.json), and its checkpoint and every other
    set of weights predicting may load (best, snapshots, SWA, EMA) loads: one cut off (a copy, a
    full disk) is a fold to train again, said in a line to `log`, not a crash in predict."""
    fold_dir = r.fold_dir(k)
    if (read_json(fold_dir / "done.json", {}) or {}).get("key") != train_key(r, k):
        return False
    if r.recipe.boosted:
        why = trees.unloadable(fold_dir)
        if why and log:
            log(f" fold {k}: {fold_dir / trees.MODEL} does not load ({why}); training this fold again")
        return not why
    kept = [fold_dir / "last.pt", fold_dir / "best.pt", *ensemble.snapshots(fold_dir),
            *(fold_dir / f for f in ensemble.AVERAGED)]
    for path in dict.fromkeys([fold_dir / f"{r.recipe.checkpoint}.pt", *(p for p in kept if p.exists())]):
        why = unloadable(path)
        if why:
            if log:
                log(f" fold {k}: {path} does not load ({why}); training this fold again")
            return False
    return True


def fresh_model(r: Run, inputs=None) -> torch.nn.Module:
    """The model a fold starts from, for the fold's `inputs` (a table's embeddings are sized by them)."""
    torch.manual_seed(r.recipe.seed)  # any freshly initialised layers start the same every run
    model = r.source.model(r.recipe, len(r.comp.task.columns(r.comp.classes)), inputs)
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model) if r.sync_bn else model


def fold_data(r: Run, folds: np.ndarray, k: int) -> FoldData:
    rows = training_rows(folds, k, r.recipe.split)
    return FoldData(inputs=r.source.inputs(rows, f"fold {k}: "), labels=r.targets, train_idx=rows,
                    valid_idx=np.flatnonzero(folds == k), task=r.comp.task, ids=r.train["id"].to_numpy(),
                    classes=r.comp.classes)


def lr_find(r: Run, phase: int, k: int, steps: int = 100) -> str:
    """`pipeline lr-find`: the range test for phase `phase` (numbered from 1, as the logs number
    them) of fold `k`, on the model as it stands at that phase's start: the run's own snapshot
    when the fold was trained with these settings, else the earlier phases trained here (kept
    under lr-find/ for the next call). Writes a PNG of loss against rate; returns a summary."""
    phases = r.recipe.phases
    if r.recipe.boosted:
        raise PipelineError(f"lr-find runs a network's learning-rate range test; recipe {r.recipe_name!r} grows "
                            f"trees (arch lightgbm), whose rate is trees.lr (pipeline tune --recipe {r.recipe_name})")
    if not 1 <= phase <= len(phases):
        raise PipelineError(f"--phase {phase}: the recipe has phases 1 to {len(phases)}")
    if k not in range(r.recipe.folds):
        raise PipelineError(f"--fold {k}: the recipe has folds 0 to {r.recipe.folds - 1}")
    with holding(r):
        return _range_test(r, phase, k, steps)


def _range_test(r: Run, phase: int, k: int, steps: int) -> str:
    phases = r.recipe.phases
    r.run_dir.mkdir(parents=True, exist_ok=True)
    folds, pi = folds_stage(r), phase - 1
    r.source.prepare(replace(r.recipe, phases=phases[:phase]))
    data = fold_data(r, folds, k)
    model = fresh_model(r, data.inputs)
    if pi > 0:
        snap = r.fold_dir(k) / "snapshots" / snapshot_name(pi - 1, phases[pi - 1].epochs - 1)
        if (read_json(r.fold_dir(k) / "done.json", {}) or {}).get("key") == train_key(r, k) and snap.exists():
            r.log(f"phase {phase} starts from {snap}")
            model.load_state_dict(torch.load(snap, map_location="cpu", weights_only=False)["model"])
        else:
            earlier = replace(r.recipe, phases=phases[:pi])
            out, key = r.run_dir / "lr-find" / f"fold{k}-phase{phase}", train_key(replace(r, recipe=earlier), k)
            if (read_json(out / "done.json", {}) or {}).get("key") == key:
                model.load_state_dict(torch.load(out / "last.pt", map_location="cpu", weights_only=False)["model"])
            else:
                r.log(f"training phases 1-{pi} first (fold {k} has no snapshot of them with these settings)")
                fit(model, earlier, data, r.comp.metric, out, key=key, dev=r.dev, log=r.log)
                write_json(out / "done.json", {"key": key})
    result = phase_range_test(model, r.recipe, pi, data, dev=r.dev, steps=steps)
    png = r.run_dir / f"lr_find_phase{phase}_fold{k}.png"
    p = phases[pi]
    plot(result, png, f"{r.comp.name}, phase {phase} ({p.pixels + ', ' if p.size else ''}frozen: {', '.join(p.frozen) or 'none'}), fold {k}")
    ends = "the loss blew up" if result.diverged else f"ran all {steps} steps without the loss blowing up"
    if not result.fell:
        ends += "; the loss never fell: check the labels, the frozen groups, and --steps"
    return (f"lr range test, phase {phase}, fold {k}: {len(result.lrs)} steps from {result.lrs[0]:.1e} to "
            f"{result.lrs[-1]:.1e} ({ends})\n"
            f"  minimum loss at {result.minimum:.2e}; suggestion (minimum / 10): {result.suggestion:.2e}; "
            f"steepest descent at {result.steepest:.2e}\n  plot: {png}")
