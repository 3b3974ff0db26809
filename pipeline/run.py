"""`pipeline run`: the stages, in order, each a plain function that reads and writes files in the
run folder (data/runs/<competition>/<run>/).

    data -> folds -> train (per fold) -> predict (OOF + test; checkpoint or snapshots, SWA, TTA views)
         -> thresholds (multi-label: per class, tuned on OOF) -> submit -> diagnostics -> scores

Every stage records a key: a fingerprint of the settings and upstream results it depends on.
A re-run skips a stage whose key is unchanged and whose outputs exist, so a changed setting
re-runs exactly the stages it affects; a killed run resumes from its last finished epoch.

Under torchrun (distributed.py) every rank runs the stages; `--parallel data` trains each fold on
all ranks together, `--parallel folds` gives each rank whole folds. Rank 0 writes every file of
the run and does the stages after predict alone; the others wait for it at each stage's end.
"""
from __future__ import annotations

import functools
import os
import platform
import shutil
import socket
import time
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from importlib.metadata import version
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from . import PipelineError, Pruned, diagnostics, ensemble, registry, submission as sub, thresholds
from .checkpoints import snapshot_name, unloadable
from .competition import Competition, load
from .device import Device
from .distributed import MODES, SINGLE, Group, launch
from .download import download
from .files import (atomic_path, file_sha1, files_fingerprint, fingerprint, held, read_json, write_csv, write_json,
                    write_parquet)
from .folds import FoldData, assign_folds
from .images import ImageCache
from .keys import settings_for
from .locate import find_data, not_found
from .lr_find import plot
from .models import GROUP_NAMES, create_model
from .preprocess import tag as preprocess_tag
from .recipe import Recipe, validate as validate_recipe
from .trainer import fit, phase_range_test
from .transforms import SYMMETRIES
from .vision import Images
from .workdir import RUN_LOCK, Workdir, in_kernel, kaggle_root, run_name


def say(*parts) -> None:
    print(*parts, flush=True)  # progress lines must show up promptly in logs and Kaggle kernels


@dataclass
class Run:
    """Everything the stages share: settings, where things live, and the image tables."""
    comp: Competition
    recipe: Recipe
    recipe_name: str
    name: str
    workdir: Workdir
    data_dir: Path
    dev: Device
    train: pd.DataFrame             # id, path, label
    targets: np.ndarray             # per training image: class index, or 0/1 tag row (labels.py)
    test: pd.DataFrame              # id, path
    train_images: ImageCache
    test_images: ImageCache
    keys: dict = field(default_factory=dict)
    times: dict = field(default_factory=dict)
    log: Callable = say
    ranks: Group = SINGLE           # every process of the run (torchrun), this one among them
    parallel: str | None = None     # "data" or "folds" when there are several
    sync_bn: bool = False           # BatchNorm statistics over every rank's share of a batch
    on_epoch: Callable | None = None  # (step, validation score) after every epoch: a tuning trial's pruner

    @property
    def run_dir(self) -> Path:
        return self.workdir.run(self.comp.name, self.name)

    @property
    def submission_path(self) -> Path:
        return self.workdir.submission(self.comp.name, self.name)

    def fold_dir(self, k: int) -> Path:
        return self.run_dir / f"fold{k}"


def start(comp_name: str, *, workdir: Workdir | None = None, data: str | None = None, run: str | None = None,
          recipe: Recipe | str | None = None, device: str = "auto", compile: bool = False,
          parallel: str | None = None, sync_bn: bool = False, log: Callable = say, **overrides) -> Run:
    """Resolve the settings and find the data (the `data` stage). `overrides` are recipe.SETTINGS;
    `parallel` and `sync_bn` are for several processes under torchrun (distributed.py)."""
    t0 = time.time()
    workdir = workdir or Workdir.default()
    comp = load(comp_name)
    if parallel not in (None, *MODES):
        raise PipelineError(f"--parallel {parallel}: use one of {', '.join(MODES)}")
    if run is not None:
        run_name(run)
    ranks, device = launch(parallel, device)
    parallel = parallel or ("data" if ranks.active else None)
    log = log if ranks.main else _quiet
    dev = Device.pick(device, compile)
    if parallel == "data":
        dev = replace(dev, group=ranks)
    if sync_bn and (parallel != "data" or dev.device.type != "cuda"):
        raise PipelineError("--sync-bn needs --parallel data on GPUs (torch's SyncBatchNorm runs on CUDA only)")
    if isinstance(recipe, Recipe):
        recipe_name = "custom"
    else:
        recipe_name = recipe or ("gpu" if dev.device.type == "cuda" else "cpu")
        if recipe_name not in comp.recipes:
            raise PipelineError(f"{comp.folder}/competition.py: no recipe {recipe_name!r} "
                                f"(has {', '.join(comp.recipes)}); pass --recipe NAME")
        recipe = comp.recipes[recipe_name]
    recipe = recipe.with_overrides(**overrides)
    validate_recipe(recipe, GROUP_NAMES, f"recipe {recipe_name!r} of {comp.name}", SYMMETRIES[comp.symmetry])
    if parallel == "data" and recipe.batch_size % ranks.world:
        raise PipelineError(f"batch size {recipe.batch_size} is the global batch and must split evenly over "
                            f"{ranks.world} ranks; use --batch-size {recipe.batch_size // ranks.world * ranks.world or ranks.world}")
    data_dir = ranks.on_main(lambda: find_or_fetch(comp, data, workdir, log))  # (one download)
    for line in getattr(comp.layout, "notices", lambda root: [])(data_dir):  # (a layout of one's own may not say)
        log(f"{comp.name}: {line}")
    train = comp.layout.train(data_dir, comp.classes)
    comp.require_two_kinds(train["label"], data_dir)
    for line in comp.unseen_classes(train["label"], data_dir):
        log(f"{comp.name}: {line}")
    if comp.classes is None:
        comp = comp.with_classes(train["label"])
        log(f"{comp.name}: {len(comp.classes)} classes from the training labels: "
            f"{', '.join(comp.classes[:8])}{', ...' if len(comp.classes) > 8 else ''}")
    test = comp.layout.test(data_dir)
    # an unknown --arch, a weights file that doesn't fit: said now, before "fold 0 of 5"
    create_model(recipe.arch, len(comp.classes), recipe.weights)
    # checked now, not after an hour of training: the sample must list exactly the test images
    sub.read_sample(sub.sample_file(data_dir, comp.submission), comp.submission, list(test["id"]), comp.classes)
    cache = workdir.cache(comp.name)
    train_files, test_files = files_fingerprint(list(train["path"])), files_fingerprint(list(test["path"]))
    r = Run(comp=comp, recipe=recipe, recipe_name=recipe_name, name=run or recipe_name, workdir=workdir,
            data_dir=data_dir, dev=dev, train=train, targets=comp.targets(train["label"]), test=test,
            train_images=ImageCache(list(train["path"]), cache, "decode train", train_files, resize=comp.resize,
                                    preprocess=comp.preprocess, truncated=comp.truncated_images),
            test_images=ImageCache(list(test["path"]), cache, "decode test", test_files, resize=comp.resize,
                                   preprocess=comp.preprocess, truncated=comp.truncated_images), log=log,
            ranks=ranks, parallel=parallel, sync_bn=sync_bn)
    made = [preprocess_tag(comp.preprocess)] if comp.preprocess else []  # (training and prediction see its images)
    made += ["truncated-kept"] if comp.truncated_images == "keep" else []  # (their grey rows too; back to refusing them)
    r.keys["data"] = fingerprint(train_files, list(train["label"]), test_files, *made)
    ranks.agree("the settings and the data", fingerprint(asdict(recipe), r.keys["data"], comp.name, r.name))
    r.times["data"] = time.time() - t0
    return r


def find_or_fetch(comp: Competition, data_arg: str | None, workdir: Workdir, log: Callable = say) -> Path:
    """The competition's data where it is found (locate.py); else built (digits) or downloaded
    from Kaggle into data/<competition>/, never inside a kernel."""
    found = find_data(comp, data_arg, workdir)
    if found is not None:
        return found
    local = workdir.data(comp.name)
    if comp.make_data is not None:
        log(f"writing {comp.name} data to {local}")
        comp.make_data(local)
        return local
    if in_kernel():
        raise PipelineError(f"no data for {comp.name} under {kaggle_root() / 'input'}: kernels have no network; "
                            f"attach the competition (Add Input -> Competitions -> {comp.slug}) and run again")
    try:
        return download(comp, local, log=log)
    except PipelineError as e:
        raise PipelineError(f"{not_found(comp, workdir)}; downloading it from Kaggle failed: {e}") from None


def _quiet(*parts) -> None:
    """The log of ranks other than 0: rank 0 speaks for the run."""


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


def folds_stage(r: Run) -> np.ndarray:
    """Each training image's fold (folds.csv), split once per data, fold count and seed."""
    def split():
        if not r.ranks.main:
            return
        folds = assign_folds(r.targets, r.recipe.folds, r.recipe.seed, r.comp.classes, r.comp.task)
        write_csv(r.run_dir / "folds.csv", pd.DataFrame({"id": r.train["id"], "label": r.train["label"], "fold": folds}))
    stage(r, "folds", fingerprint(r.keys["data"], settings_for(r.recipe, "folds")), [r.run_dir / "folds.csv"], split)
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
    r.train_images.prepare(sorted({p.size for p in r.recipe.phases}))
    r.test_images.prepare([r.recipe.phases[-1].size])  # a corrupt test image is said now, not after training
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
        for line in one_step_epochs(r.recipe.batch_size, int((folds != k).sum()), k):
            log(line)
        model = fresh_model(r)
        fit(model, r.recipe, fold_data(r, folds, k), r.comp.metric, r.fold_dir(k), key=key, dev=r.dev,
            feature_cache=features, log=log, on_epoch=r.on_epoch)
        if r.dev.group.main:  # (the fold's one writer: rank 0, or under --parallel folds its owner)
            write_json(done, {"key": key})


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
    kept = [fold_dir / "last.pt", fold_dir / "best.pt", *ensemble.snapshots(fold_dir),
            *(fold_dir / f for f in ensemble.AVERAGED)]
    for path in dict.fromkeys([fold_dir / f"{r.recipe.checkpoint}.pt", *(p for p in kept if p.exists())]):
        why = unloadable(path)
        if why:
            if log:
                log(f" fold {k}: {path} does not load ({why}); training this fold again")
            return False
    return True


def fresh_model(r: Run) -> torch.nn.Module:
    torch.manual_seed(r.recipe.seed)  # any freshly initialised layers start the same every run
    model = create_model(r.recipe.arch, len(r.comp.classes), r.recipe.weights)
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model) if r.sync_bn else model


def fold_data(r: Run, folds: np.ndarray, k: int) -> FoldData:
    return FoldData(inputs=Images(r.train_images, r.comp.symmetry), labels=r.targets,
                    train_idx=np.flatnonzero(folds != k), valid_idx=np.flatnonzero(folds == k), task=r.comp.task,
                    ids=r.train["id"].to_numpy(), classes=r.comp.classes)


def lr_find(r: Run, phase: int, k: int, steps: int = 100) -> str:
    """`pipeline lr-find`: the range test for phase `phase` (numbered from 1, as the logs number
    them) of fold `k`, on the model as it stands at that phase's start: the run's own snapshot
    when the fold was trained with these settings, else the earlier phases trained here (kept
    under lr-find/ for the next call). Writes a PNG of loss against rate; returns a summary."""
    phases = r.recipe.phases
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
    r.train_images.prepare(sorted({p.size for p in phases[:phase]}))
    model, data = fresh_model(r), fold_data(r, folds, k)
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
    plot(result, png, f"{r.comp.name}, phase {phase} ({p.size}px, frozen: {', '.join(p.frozen) or 'none'}), fold {k}")
    ends = "the loss blew up" if result.diverged else f"ran all {steps} steps without the loss blowing up"
    if not result.fell:
        ends += "; the loss never fell: check the labels, the frozen groups, and --steps"
    return (f"lr range test, phase {phase}, fold {k}: {len(result.lrs)} steps from {result.lrs[0]:.1e} to "
            f"{result.lrs[-1]:.1e} ({ends})\n"
            f"  minimum loss at {result.minimum:.2e}; suggestion (minimum / 10): {result.suggestion:.2e}; "
            f"steepest descent at {result.steepest:.2e}\n  plot: {png}")


def predict_stage(r: Run, folds: np.ndarray) -> None:
    """Each fold predicts with its ensemble (ensemble.py); the OOF score of every ingredient alone
    goes to ensemble.json so a user sees what each one bought."""
    classes = r.comp.classes
    mine = {}
    for k in own_folds(r):  # (with several ranks: each its own folds, or every fold split by image)
        base, members = ensemble.members(r.fold_dir(k), r.recipe)
        mine[k] = ensemble.predict_fold(base, members, train_images=r.train_images, valid=np.flatnonzero(folds == k),
                                        test_images=r.test_images, recipe=r.recipe, dev=r.dev, desc=f"fold {k}")
    if r.parallel == "folds":
        mine = {k: v for part in r.ranks.gather(mine) for k, v in part.items()}
    if not r.ranks.main:
        return
    oof, test, parts, seconds = [], [], {}, {}
    for k in r.recipe.fold_list():
        valid = np.flatnonzero(folds == k)
        ingredients, p, secs = mine[k]
        for name, q in ingredients.items():
            parts.setdefault(name, []).append(q)
        for name, t in secs.items():
            seconds[name] = seconds.get(name, 0.0) + t
        oof.append(pd.DataFrame(list(ingredients.values())[-1], columns=classes).assign(
            id=r.train["id"].to_numpy()[valid], label=r.train["label"].to_numpy()[valid], fold=k))
        test.append(pd.DataFrame(p, columns=classes).assign(id=r.test["id"].to_numpy(), fold=k))
    oof_df = pd.concat(oof, ignore_index=True)
    y = r.comp.targets(oof_df["label"])
    table = [{"ingredient": name, r.comp.metric.name: score(r, y, np.concatenate(ps))}
             for name, ps in parts.items()]
    write_json(r.run_dir / "ensemble.json", {"ingredients": table, "seconds": {k: round(v, 1) for k, v in seconds.items()}})
    write_parquet(r.run_dir / "oof_predictions.parquet", oof_df[["id", "label", "fold"] + classes])
    test_df = pd.concat(test, ignore_index=True)
    write_parquet(r.run_dir / "test_predictions.parquet", test_df[["id", "fold"] + classes])


def list_snapshots(comp_name: str, run: str | None = None, workdir: Workdir | None = None) -> str:
    """`pipeline snapshots`: each fold's snapshots and SWA and EMA models with their size and validation score."""
    folder = (workdir or Workdir.default()).existing_run(load(comp_name).name, run)
    return f"{folder}:\n" + ensemble.describe(folder)


def score(r: Run, y: np.ndarray, probs: np.ndarray, thresholds=None) -> float:
    """The competition's metric on predictions as they would be submitted (clipped; tags above
    the thresholds, the metric's default ones when none are given)."""
    return r.comp.metric(y, sub.submitted_probabilities(probs, r.comp.submission), thresholds)


def read_thresholds(r: Run) -> np.ndarray | None:
    saved = read_json(r.run_dir / "thresholds.json", None)
    return None if saved is None else np.array([saved["thresholds"][c] for c in r.comp.classes])


def thresholds_stage(r: Run) -> None:
    """Multi-label: a threshold per class, tuned on the OOF predictions (thresholds.py). Tuned and
    scored on the same predictions is optimistic; with two or more folds, each fold is also scored
    with thresholds tuned on the others, which is not."""
    classes, metric = r.comp.classes, r.comp.metric
    oof = pd.read_parquet(r.run_dir / "oof_predictions.parquet")
    y, probs, fold = r.comp.targets(oof["label"]), oof[classes].to_numpy(), oof["fold"].to_numpy()
    tuned = thresholds.tune(y, probs, metric)
    result = {"thresholds": dict(zip(classes, tuned.tolist())), "default": metric.threshold,
              f"oof_{metric.name}_default": metric(y, probs), f"oof_{metric.name}_tuned": metric(y, probs, tuned)}
    if len(np.unique(fold)) > 1:  # each fold scored with thresholds tuned on the other folds
        held = [metric(y[fold == k], probs[fold == k], thresholds.tune(y[fold != k], probs[fold != k], metric))
                for k in np.unique(fold)]
        result[f"{metric.name}_tuned_on_other_folds"] = float(np.mean(held))
    write_json(r.run_dir / "thresholds.json", result)
    honest = result.get(f"{metric.name}_tuned_on_other_folds")
    r.log(f" OOF {metric.name}: {result[f'oof_{metric.name}_default']:.4f} at {metric.threshold} for every class, "
          f"{result[f'oof_{metric.name}_tuned']:.4f} with per-class thresholds tuned on it"
          + (f", {honest:.4f} per fold with thresholds tuned on the other folds" if honest is not None else
             "; tuned and scored on the same images, so optimistic: two or more folds (--train-folds) "
             "give an honest score"))


def submit_stage(r: Run) -> None:
    spec, classes = r.comp.submission, r.comp.classes
    sample = sub.read_sample(sub.sample_file(r.data_dir, spec), spec, list(r.test["id"]), classes)
    preds = pd.read_parquet(r.run_dir / "test_predictions.parquet")
    mean = preds.groupby("id", sort=False)[classes].mean()  # fold ensemble: average probabilities
    out = sub.build(list(mean.index), mean.to_numpy(), classes, sample, spec, multilabel=r.comp.multilabel,
                    thresholds=read_thresholds(r))
    sub.validate(out, sample, classes, spec, r.comp.multilabel)
    sub.write(out, r.submission_path)


def diagnostics_stage(r: Run) -> None:
    """Curves per fold, confusion matrix and per-class table, top-loss images (diagnostics.py)."""
    out, classes = r.run_dir / "diagnostics", r.comp.classes
    for k in r.recipe.fold_list():
        diagnostics.training_curves(r.fold_dir(k), r.comp.metric.name, out / f"curves_fold{k}.png")
    oof = pd.read_parquet(r.run_dir / "oof_predictions.parquet")
    y, probs, tuned = r.comp.targets(oof["label"]), oof[classes].to_numpy(), read_thresholds(r)
    size = r.recipe.phases[-1].size
    positions = pd.Index(r.train["id"]).get_indexer(oof["id"])
    diagnostics.top_losses(r.train_images[size], positions, y, probs, oof["id"].to_numpy(), classes,
                           out / "top_losses.png", r.comp.task, tuned)
    if r.comp.multilabel:
        table = diagnostics.per_tag(y, probs, tuned, classes, out)
        worst = ", ".join(f"{t.tag} (F1 {t.f1:.2f}, {t.support} images)" for t in table.head(3).itertuples())
        r.log(f" hardest tags: {worst}; plots and tables in {out}")
        return
    pairs = diagnostics.confusion(y, probs, classes, out)
    top = ", ".join(f"{p.true} as {p.predicted} ({p.count})" for p in pairs.head(3).itertuples())
    r.log(f" most confused: {top or 'nothing'}; plots and tables in {out}")


def scores_stage(r: Run) -> dict:
    """Per-fold and OOF scores and stage times (the resolved settings are in settings.json)."""
    classes, metric, tuned = r.comp.classes, r.comp.metric, read_thresholds(r)
    oof = pd.read_parquet(r.run_dir / "oof_predictions.parquet")
    def scored(df): return score(r, r.comp.targets(df["label"]), df[classes].to_numpy(), tuned)
    folds = [{"fold": int(k), "images": len(df), metric.name: scored(df)} for k, df in oof.groupby("fold")]
    result = {
        "competition": r.comp.name, "run": r.name, "metric": metric.name,
        "higher_is_better": metric.higher_is_better,
        "folds": folds, "oof": scored(oof), "oof_images": len(oof),
        "mean": float(np.mean([f[metric.name] for f in folds])),
        "std": float(np.std([f[metric.name] for f in folds])),
        "trained_folds": r.recipe.fold_list(), "total_folds": r.recipe.folds,
        "seconds": {k: round(v, 1) for k, v in r.times.items()},
        "submission": str(r.submission_path),
        "ensemble": read_json(r.run_dir / "ensemble.json", {}),
    }
    if tuned is not None:
        result["thresholds"] = read_json(r.run_dir / "thresholds.json", {})
    return result


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


def run_all(r: Run) -> dict | None:
    """The stages in order, holding the run folder; the run's ending (scores, or failed /
    interrupted) goes to the registry. Ranks other than 0 return None: the scores and the records
    are rank 0's."""
    with holding(r):
        if not r.ranks.main:
            return run_stages(r)
        r.run_dir.mkdir(parents=True, exist_ok=True)
        write_json(r.run_dir / "settings.json", settings(r))
        record(r, "running")  # what a kill -9 leaves: `pipeline report` shows it killed once the lock is free
        try:
            result = run_stages(r)
        except KeyboardInterrupt as e:
            record(r, f"interrupted{' (SIGTERM)' if str(e) == 'SIGTERM' else ''}")
            raise
        except Pruned as e:
            record(r, f"pruned: {e}")
            raise
        except Exception as e:
            record(r, f"failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
            raise
        record(r, "finished", result)
        return result


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


def run_stages(r: Run) -> dict:
    rc = r.recipe
    trained = rc.fold_list()
    r.log(f"{r.comp.name}: recipe {r.recipe_name}, {rc.arch} ({rc.weights} weights), {len(r.train)} train / "
          f"{len(r.test)} test images from {r.data_dir}, device {r.dev.device}; run folder {r.run_dir}")
    if len(trained) < rc.folds:
        r.log(f"training folds {','.join(map(str, trained))} of {rc.folds} (recipe {r.recipe_name!r}); "
              f"--train-folds all trains every fold")
    folds = folds_stage(r)
    fold_keys = [train_key(r, k) for k in trained]
    stage(r, "train", fingerprint(fold_keys),
          [r.fold_dir(k) / f"{rc.checkpoint}.pt" for k in trained], lambda: train_stage(r, folds),
          intact=lambda: all(fold_trained(r, k) for k in trained))
    stage(r, "predict", fingerprint(fold_keys, settings_for(rc, "predict"), r.keys["data"]),
          [r.run_dir / f for f in ("oof_predictions.parquet", "test_predictions.parquet", "ensemble.json")],
          lambda: predict_stage(r, folds))
    if r.comp.multilabel:
        stage(r, "thresholds", fingerprint(r.keys["predict"], settings_for(r.comp, "thresholds"),
                                           thresholds.GRID.tolist()),
              [r.run_dir / "thresholds.json"], lambda: thresholds_stage(r), alone=True)
    decided = r.keys.get("thresholds", r.keys["predict"])
    sample_file = sub.find_sample(r.data_dir, r.comp.submission)
    stage(r, "submit", fingerprint(decided, settings_for(r.comp, "submit"),
                                   files_fingerprint([sample_file]) if sample_file else None),
          [r.submission_path], lambda: submit_stage(r), alone=True)
    table = "per_class.csv" if r.comp.multilabel else "confusion.csv"
    stage(r, "diagnostics", fingerprint(decided, fold_keys),
          [r.run_dir / "diagnostics" / f for f in (table, "top_losses.png")], lambda: diagnostics_stage(r),
          alone=True)
    if not r.ranks.main:
        return None
    t0 = time.time()
    result = scores_stage(r)
    result["seconds"]["scores"] = round(time.time() - t0, 1)
    # what `pipeline submit` checks: the file is this attempt's, made with the settings now on disk
    result["made_from"] = {"settings.json": file_sha1(r.run_dir / "settings.json"),
                           "submission": file_sha1(r.submission_path)}
    write_json(r.run_dir / "scores.json", result)
    if in_kernel():  # where Kaggle looks for a kernel's submission
        with atomic_path(kaggle_root() / "working" / "submission.csv") as tmp:
            shutil.copyfile(r.submission_path, tmp)
    return result


def format_scores(result: dict) -> str:
    m = result["metric"]
    lines = [f"{result['competition']} / run {result['run']}: folds "
             f"{','.join(map(str, result['trained_folds']))} of {result['total_folds']}",
             f"{'fold':>6} {'images':>7} {m:>10}"]
    lines += [f"{f['fold']:>6} {f['images']:>7} {f[m]:>10.4f}" for f in result["folds"]]
    spread = (f"(fold mean {result['mean']:.4f} ± {result['std']:.4f})" if len(result["folds"]) > 1
              else "(one fold: --train-folds all for the spread over folds)")
    lines.append(f"{'OOF':>6} {result['oof_images']:>7} {result['oof']:>10.4f}   {spread}")
    ingredients = result["ensemble"].get("ingredients", [])
    if len(ingredients) > 1:
        lines.append("OOF by ingredient:")
        lines += [f"  {i[m]:.4f}  {i['ingredient']}" for i in ingredients]
    lines.append("stage seconds: " + "  ".join(f"{k} {v:.0f}" for k, v in result["seconds"].items())
                 + f"  total {sum(result['seconds'].values()):.0f}")
    lines.append(f"submission: {result['submission']}")
    return "\n".join(lines)
