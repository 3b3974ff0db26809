"""The shared trainer: how one fold trains. `fit` loops over the recipe's phases, each a loop
over epochs of `train_one_epoch` then `validate` (epochs.py), and is resumable after every epoch
from its `Progress` (state.pt). `setup_phase` builds what a phase trains and on what, for `fit`
and the learning-rate range test alike. SWA and hard-negative mining (mining.py) are phases of
the recipe; the loop averages at their points and adds the mined images, and keeps the EMA of
the weights after every step when the recipe asks (averages.py).

A phase fixes the image size, which layer groups are frozen, the peak learning rate of each
group and the schedule. Progressive resizing is simply a later phase at a larger size on the same
weights. A phase with `precompute` runs the frozen body once over the images and trains the head
on the cached activations, which on a CPU turns minutes into seconds.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from pipeline.core.device import Device
from pipeline.core.files import write_csv
from pipeline.metrics import Metric
from pipeline.recipe import Phase, Recipe, averaging_points, cycle_ends
from pipeline.training import batchnorm
from pipeline.training.averages import MovingAverage, WeightAverage
from pipeline.training.checkpoints import checkpoint, save, snapshot_name
from pipeline.training.epochs import body_features, epoch_loader, make_optimizer, train_one_epoch, validate
from pipeline.training.folds import FoldData
from pipeline.training.lr_find import RangeTest, range_test
from pipeline.training.mining import mine_hard_examples
from pipeline.training.mixing import Mixer
from pipeline.training.models import classifier, freeze, layer_groups
from pipeline.training.sampling import epoch_indices


@dataclass
class PhaseSetup:
    """What one phase trains and on what; built by `setup_phase` for training and the range test alike."""
    index: int
    phase: Phase
    seed: int                  # shuffling, sampling and augmentation: seeded per phase, and per epoch from it
    net: nn.Module             # the model, or its classifier alone on precomputed activations
    train_net: nn.Module       # `net` for training steps: in DistributedDataParallel across ranks
    optimizer: torch.optim.Optimizer
    train_ds: torch.utils.data.Dataset  # augmented training examples (or activations)
    valid_ds: torch.utils.data.Dataset
    plain_ds: torch.utils.data.Dataset  # the training examples as predict sees them
    prepare: Callable          # a batch as it comes from a loader -> the net's input on the device
    model: nn.Module
    recipe: Recipe
    data: FoldData
    dev: Device

    def loader(self, epoch: int, extra: np.ndarray | None = None):
        """One epoch's training batches: the training images (rare classes oversampled) plus
        `extra` positions, in an order and with augmentation seeded by the epoch, so that a
        resumed run sees exactly the batches it would have seen."""
        rc, seed = self.recipe, self.seed * 100 + epoch
        order = epoch_indices(self.data.task.strata(self.data.labels[self.data.train_idx]), rc.oversample,
                              np.random.default_rng(seed))
        if extra is not None:
            order = np.concatenate([order, extra])
        return epoch_loader(self.train_ds, order, min(rc.batch_size, len(order)), seed, self.dev)

    def train_prepare(self, epoch: int) -> Callable:
        """`prepare` for the epoch's training batches: with the augmentation the device does (the
        kind of data's, seeded by the epoch); none on a precomputed head's activations."""
        if self.phase.precompute:
            return self.prepare
        return self.data.inputs.on_device(self.prepare, self.seed * 100 + epoch, self.dev)

    def mixer(self, epoch: int) -> Mixer | None:
        """The epoch's mixup / cutmix (mixing.py), or None: a precomputed head's activations are
        not images. Its own stream of the epoch's seed (the loader's order draws from the other)."""
        rc = self.recipe
        if self.phase.precompute or not (rc.mixup or rc.cutmix):
            return None
        return Mixer(rc.mixup, rc.cutmix, [self.seed * 100 + epoch, 1])

    def train_mode(self) -> None:
        """Training mode, except for the BatchNorm of frozen groups (batchnorm.train_mode)."""
        if self.phase.precompute:
            self.net.train()
        else:
            batchnorm.train_mode(self.model, self.recipe.batchnorm)


def setup_phase(model: nn.Module, recipe: Recipe, index: int, data: FoldData, *, dev: Device,
                feature_cache: dict | None = None, phase: Phase | None = None, log: Callable = print) -> PhaseSetup:
    """Freeze the phase's layer groups and build its optimizer and data. `phase` replaces the
    recipe's phase `index` (a rate the range test chose). A precompute phase trains the
    classifier alone, on cached activations of the frozen body."""
    phase = phase or recipe.phases[index]
    prepare = data.inputs.placer(model, dev)
    groups = layer_groups(model)
    freeze(model, groups, phase.frozen)
    optimizer = make_optimizer(groups, phase, recipe.weight_decay)
    seed = recipe.seed * 1000 + index
    if phase.precompute:
        net, train_ds, valid_ds, prepare = _head_on_features(model, phase, data, dev, recipe, feature_cache,
                                                             pristine_body(recipe, index), prepare, log)
        plain_ds = train_ds
    else:
        inputs, labels, t, v = data.inputs, data.labels, data.train_idx, data.valid_idx
        net, train_ds = model, inputs.dataset(t, labels, phase, recipe, dev, augment=seed)
        valid_ds, plain_ds = inputs.dataset(v, labels, phase, recipe, dev), inputs.dataset(t, labels, phase, recipe, dev)
    return PhaseSetup(index=index, phase=phase, seed=seed, net=net, train_net=dev.parallel(net), optimizer=optimizer,
                      train_ds=train_ds, valid_ds=valid_ds, plain_ds=plain_ds, prepare=prepare, model=model,
                      recipe=recipe, data=data, dev=dev)


@dataclass
class Progress:
    """Where a fold's training stands after its last finished epoch (state.pt): enough to resume
    it exactly. Trusted only when its `key` (a fingerprint of all that shapes training) matches."""
    key: str
    phase: int = 0                   # the phase to run next...
    epoch: int = 0                   # ...from this epoch
    model: dict | None = None
    optimizer: dict | None = None    # None at a phase's start: the phase builds its own
    rng: torch.Tensor | None = None  # torch's global generator: dropout and drop-path
    history: list = field(default_factory=list)  # one row per epoch (history.csv)
    steps: list = field(default_factory=list)    # one row per step (steps.csv)
    best: float | None = None        # the best validation score so far (best.pt)
    swa: dict | None = None          # the running weight average
    ema: dict | None = None          # the exponential moving average of the weights
    mined: np.ndarray | None = None  # the mining phase's hard examples, kept for its later epochs
    found: dict = field(default_factory=dict)  # phase index -> the rate its range test chose

    @classmethod
    def load(cls, path: Path, key: str, log: Callable = print) -> "Progress | None":
        if not path.exists():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # cut off (a copy, a full disk): the fold starts again rather than stop
            log(f"  {path} is unreadable ({type(e).__name__}: {str(e)[:80]}); training this fold from its start")
            return None
        return cls(**state) if state.get("key") == key and state.keys() <= vars(cls(key)).keys() else None

    def save(self, path: Path) -> None:
        save(dict(vars(self)), path)  # (not asdict: it would deep-copy every tensor)

    def finished(self, setup: PhaseSetup, epoch: int, swa: WeightAverage, ema: MovingAverage) -> None:
        """Epoch `epoch` of `setup`'s phase is done: the state to resume from after it."""
        done = epoch + 1 == setup.phase.epochs
        self.phase, self.epoch = setup.index + done, 0 if done else epoch + 1
        self.model, self.rng = setup.model.state_dict(), torch.get_rng_state()
        self.optimizer = None if done else setup.optimizer.state_dict()
        self.swa, self.ema = swa.state_dict(), ema.state_dict()

    def first_epoch(self, setup: PhaseSetup) -> int:
        """Where `setup`'s phase starts: 0, or inside it (its optimizer restored) when resuming."""
        if setup.index != self.phase or self.optimizer is None:
            return 0
        setup.optimizer.load_state_dict(self.optimizer)
        return self.epoch


def fit(model: nn.Module, recipe: Recipe, data: FoldData, metric: Metric, out_dir: Path, *, key: str,
        dev: Device, feature_cache: dict | None = None,
        log: Callable = print, on_epoch: Callable[[int, float], None] | None = None) -> pd.DataFrame:
    """Train one fold through the recipe's phases. Writes to `out_dir`: last.pt, best.pt,
    snapshots/ (the weights at every cycle end), swa.pt (when a phase averages weights), ema.pt
    (when the recipe keeps a moving average),
    hard_negatives.csv (when one mines), history.csv (one row per epoch), steps.csv (one per
    step), and state.pt after every epoch, from which a killed run resumes exactly. With several
    ranks training it together (dev.group), all train and rank 0 alone writes. `on_epoch(step,
    score)` hears each epoch's validation score (a tuning trial's pruner, which may stop it)."""
    main = dev.group.main
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.seed)  # dropout and drop-path; shuffling and augmentation seed their own
    progress = Progress.load(out_dir / "state.pt", key, log)
    if progress:
        model.load_state_dict(progress.model)
        torch.set_rng_state(progress.rng)
        log(f"  resuming at phase {progress.phase + 1}, epoch {progress.epoch + 1}")
    else:  # a fresh start: nothing from an earlier, different training may be mistaken for ours
        progress = Progress(key)
        if main:
            _clear_outputs(out_dir)
    swa, ema = WeightAverage(model, progress.swa), MovingAverage(model, recipe.ema, progress.ema)
    for pi in range(progress.phase, len(recipe.phases)):
        phase = _rate_found(model, recipe, pi, data, dev, feature_cache, progress.found, log)
        setup = setup_phase(model, recipe, pi, data, dev=dev, feature_cache=feature_cache,
                            phase=phase, log=log)
        first = progress.first_epoch(setup)
        if phase.mine and first == 0:  # (a run resumed inside the phase keeps what it mined before)
            progress.mined = _mine(setup, out_dir / "hard_negatives.csv", log)
        extra = np.repeat(progress.mined, phase.mine_repeat) if phase.mine else None
        for epoch in range(first, phase.epochs):
            row = run_epoch(setup, epoch, extra, metric, progress, log,
                            after_step=ema.update if recipe.ema and not phase.precompute else None)
            ckpt = checkpoint(model, recipe, row, data.task)
            improved = progress.best is None or metric.better(row[metric.name], progress.best)
            progress.best = row[metric.name] if improved else progress.best
            if main and improved:
                save(ckpt, out_dir / "best.pt")
            if main and epoch + 1 in cycle_ends(phase):  # the rate's low point: a snapshot for the ensemble
                save(ckpt, out_dir / "snapshots" / snapshot_name(pi, epoch))
            if phase.swa and epoch + 1 in averaging_points(phase):
                swa.update()
            progress.finished(setup, epoch, swa, ema)
            if main:
                progress.save(out_dir / "state.pt")
            if on_epoch is not None:
                on_epoch(len(progress.history) - 1, row[metric.name])
    for average in (swa, ema):
        if average.averaged is not None:
            average.finish(recipe, data, metric, out_dir, dev, log)
    if main:
        save(checkpoint(model, recipe, progress.history[-1], data.task), out_dir / "last.pt")
        write_csv(out_dir / "steps.csv", pd.DataFrame(progress.steps))
        write_csv(out_dir / "history.csv", pd.DataFrame(progress.history))
        (out_dir / "state.pt").unlink(missing_ok=True)
    dev.group.barrier()  # the fold's files are written before any rank reads them
    return pd.DataFrame(progress.history)


def run_epoch(setup: PhaseSetup, epoch: int, extra: np.ndarray | None, metric: Metric, progress: Progress,
              log: Callable, after_step: Callable[[], None] | None = None) -> dict:
    """Train one epoch of the phase (`after_step()` after each step), validate, add the epoch's
    rows to `progress`; returns the epoch's history row."""
    t0, phase, pi, dev = time.time(), setup.phase, setup.index, setup.dev
    where = f"phase {pi + 1}/{len(setup.recipe.phases)} epoch {epoch + 1}/{phase.epochs} {phase.pixels}"
    train_dl = setup.loader(epoch, extra)
    setup.train_mode()
    rows = train_one_epoch(setup.train_net, train_dl, setup.optimizer, phase=phase, epoch=epoch,
                           prepare=setup.train_prepare(epoch), dev=dev, task=setup.data.task,
                           label_smoothing=setup.recipe.label_smoothing, desc=where,
                           after_step=after_step, mix=setup.mixer(epoch))
    valid_loss, probs = validate(setup.net, setup.valid_ds, setup.recipe.batch_size * 2, setup.prepare, dev,
                                 setup.data.task)
    score = metric(*setup.data.task.in_units(setup.data.labels[setup.data.valid_idx], probs))
    train_loss = float(np.mean([r["loss"] for r in rows]))
    progress.steps += [{"phase": pi, "epoch": epoch, **r} for r in rows]
    progress.history.append({"phase": pi, "epoch": epoch, "size": phase.size, "train_loss": train_loss,
                             "valid_loss": valid_loss, metric.name: score, "seconds": time.time() - t0})
    log(f"  {where}  train_loss {train_loss:.4f}  valid_loss {valid_loss:.4f}  "
        f"{metric.name} {score:.4f}  {time.time() - t0:.0f}s")
    return progress.history[-1]


def _clear_outputs(out_dir: Path) -> None:
    shutil.rmtree(out_dir / "snapshots", ignore_errors=True)
    for f in (WeightAverage.file, MovingAverage.file, "hard_negatives.csv"):
        (out_dir / f).unlink(missing_ok=True)


def _rate_found(model, recipe: Recipe, pi: int, data: FoldData, dev: Device, feature_cache: dict | None,
                found: dict, log: Callable) -> Phase:
    """Phase `pi`, its rate chosen by a range test at its start when the recipe says "find" (once:
    a resumed run reuses the rate found before)."""
    phase = recipe.phases[pi]
    if phase.lr != "find":
        return phase
    if pi not in found:
        found[pi] = phase_range_test(model, recipe, pi, data, dev=dev, feature_cache=feature_cache).suggestion
        log(f"  phase {pi + 1}: the lr range test suggests {found[pi]:.2e}")
    return replace(phase, lr=found[pi])


def phase_range_test(model: nn.Module, recipe: Recipe, index: int, data: FoldData, *, dev: Device,
                     feature_cache: dict | None = None, steps: int = 100) -> RangeTest:
    """The lr range test (lr_find.py) under exactly the conditions of the recipe's phase `index`,
    on `model` as it stands at that phase's start: the same frozen groups and rate ratios (a
    phase whose rate is "find" tests one rate for all groups), batch size, weight decay, label
    smoothing, image size, sampling and augmentation; a precompute phase tests the head on activations."""
    phase = recipe.phases[index]
    setup = setup_phase(model, recipe, index, data, dev=dev, feature_cache=feature_cache,
                        phase=replace(phase, lr=1.0) if phase.lr == "find" else phase)
    loader = setup.loader(0)
    setup.train_mode()
    return range_test(setup.train_net, loader, setup.optimizer, setup.train_prepare(0), dev, data.task, steps=steps,
                      label_smoothing=recipe.label_smoothing)


def _mine(setup: PhaseSetup, csv: Path, log: Callable) -> np.ndarray:
    t0, phase = time.time(), setup.phase
    mined = mine_hard_examples(setup.net, setup.plain_ds, setup.data, phase.mine, setup.prepare, setup.dev,
                               setup.recipe.batch_size * 2, csv)
    log(f"  mined {len(mined)} hardest training images, added {phase.mine_repeat}x to each epoch: "
        f"{csv}  {time.time() - t0:.0f}s")
    return mined


def pristine_body(recipe: Recipe, phase_index: int) -> bool:
    """True while no earlier phase has trained the body: its activations are then the same for
    every fold and can be shared between them."""
    return all(p.precompute for p in recipe.phases[:phase_index])


def _head_on_features(model, phase: Phase, data: FoldData, dev: Device, recipe: Recipe,
                      cache: dict | None, shareable: bool, prepare: Callable, log: Callable):
    """The classifier and datasets of (activation, label) pairs for a precompute phase: what the
    frozen body makes of every example (models.features), once. With recipe.batchnorm "adapt",
    the body's statistics are first recomputed on the fold's training examples (batchnorm.py):
    its activations are then the fold's own."""
    shareable = shareable and recipe.batchnorm != "adapt"
    feats = cache.get(phase.size) if (cache is not None and shareable) else None
    if feats is None:
        if recipe.batchnorm == "adapt":
            t0 = time.time()
            plain = data.inputs.dataset(data.train_idx, None, phase, recipe, dev)
            batchnorm.adapt(model, plain, recipe.batch_size, recipe.seed, dev, prepare)
            log(f"  BatchNorm statistics recomputed on the fold's {len(data.train_idx)} training images "
                f"at {phase.size}px in {time.time() - t0:.0f}s")
        t0, every = time.time(), np.arange(len(data.labels))
        feats = body_features(model, data.inputs.dataset(every, None, phase, recipe, dev), prepare, dev,
                              recipe.batch_size * 2).cpu()
        if dev.group.main:  # (no epoch's time counts this pass)
            log(f"  precomputed activations for {len(every)} images at {phase.size}px in {time.time() - t0:.0f}s")
        if cache is not None and shareable:
            cache[phase.size] = feats
    y = torch.tensor(data.labels)
    train_ds = torch.utils.data.TensorDataset(feats[data.train_idx], y[data.train_idx])
    valid_ds = torch.utils.data.TensorDataset(feats[data.valid_idx], y[data.valid_idx])
    return classifier(model), train_ds, valid_ds, lambda x: x.to(dev.device)
