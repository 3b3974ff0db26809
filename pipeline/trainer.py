"""The shared trainer: a loop over a recipe's phases, each a loop over epochs of
`train_one_epoch` then `validate`. One fold at a time; resumable after every epoch.

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
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from .device import Device
from .files import atomic_path, write_csv
from .images import ImageCache
from .labels import decide, describe, example_losses, label_loss, probabilities, strata
from .lr_find import RangeTest, range_test
from .metrics import Metric
from .models import freeze, layer_groups, normalization, train_mode
from .recipe import Phase, Recipe, averaging_points, cycle_ends
from .sampling import epoch_indices
from .schedules import lr_at
from .transforms import ImageDataset, to_input, train_augment


@dataclass
class FoldData:
    images: ImageCache       # every training image; indexed by train_idx / valid_idx
    labels: np.ndarray       # class index per image, or a 0/1 row of tags (labels.py)
    train_idx: np.ndarray
    valid_idx: np.ndarray
    ids: np.ndarray | None = None       # image ids and class names, for the files a user reads
    classes: list[str] | None = None

    @property
    def multilabel(self) -> bool:
        return self.labels.ndim == 2


def make_optimizer(groups: dict[str, list[nn.Parameter]], phase: Phase, weight_decay: float):
    """AdamW with one param group per (layer group, decay or not), each carrying its peak rate.
    Frozen groups are left out; biases and norm weights get no weight decay."""
    names = list(groups)
    peaks = phase.lr if isinstance(phase.lr, tuple) else (phase.lr,) * len(names)
    param_groups = []
    for name, peak in zip(names, peaks):
        if name in phase.frozen:
            continue
        decay = [p for p in groups[name] if p.ndim > 1]
        no_decay = [p for p in groups[name] if p.ndim <= 1]
        for ps, wd in ((decay, weight_decay), (no_decay, 0.0)):
            if ps:
                param_groups.append({"params": ps, "lr": peak, "peak_lr": peak, "weight_decay": wd,
                                     "layer_group": name})
    return torch.optim.AdamW(param_groups, betas=(0.9, 0.99), fused=True)  # one kernel for all tensors


def set_schedule(optimizer, phase: Phase, step: int, steps_per_epoch: int) -> tuple[float, float | None]:
    mult, momentum = lr_at(phase, step, steps_per_epoch)
    for g in optimizer.param_groups:
        g["lr"] = g["peak_lr"] * mult
        if momentum is not None:
            g["betas"] = (momentum, g["betas"][1])
    return mult, momentum


def train_one_epoch(model, loader, optimizer, *, phase: Phase, epoch: int, prepare: Callable,
                    dev: Device, label_smoothing: float, desc: str) -> list[dict]:
    """One pass over `loader`; returns one row per step (lr, momentum, loss)."""
    steps, rows = len(loader), []
    scaler = torch.amp.GradScaler(enabled=dev.amp_dtype == torch.float16)
    bar = tqdm(loader, desc=desc, leave=False, dynamic_ncols=True)
    for i, (x, y) in enumerate(bar):
        step = epoch * steps + i
        set_schedule(optimizer, phase, step, steps)
        x, y = prepare(x), y.to(dev.device, non_blocking=True)
        with dev.autocast():
            loss = label_loss(model(x), y, label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        loss = loss.item()
        g = optimizer.param_groups[-1]  # the fastest group: the head's, or the latest unfrozen
        rows.append({"step": step, "lr": g["lr"], "momentum": g["betas"][0], "loss": loss})
        bar.set_postfix(loss=f"{loss:.3f}")
    return rows


@torch.inference_mode()
def validate(model, loader, prepare: Callable, dev: Device) -> tuple[float, np.ndarray]:
    """Mean loss (cross-entropy, or binary cross-entropy for tags) and class probabilities over `loader`."""
    model.eval()
    losses, probs = [], []
    for x, y in loader:
        with dev.autocast():
            logits = model(prepare(x)).float()
        losses.append(label_loss(logits, y.to(dev.device), reduction="sum").item())
        probs.append(probabilities(logits, y.ndim == 2).cpu().numpy())
    p = np.concatenate(probs)
    return sum(losses) / len(p), p


@torch.inference_mode()
def body_features(model, images: np.ndarray, dev: Device, batch_size: int) -> torch.Tensor:
    """Pooled activations of the body (everything before the classifier) for uint8 images."""
    model.eval()
    mean, std = normalization(model)
    out = []
    for i in tqdm(range(0, len(images), batch_size), desc="precompute activations", leave=False):
        x = to_input(torch.from_numpy(images[i:i + batch_size]), mean, std, dev.device, dev.channels_last)
        with dev.autocast():
            out.append(model.forward_head(model.forward_features(x), pre_logits=True).float())
    return torch.cat(out)


@dataclass
class PhaseSetup:
    """What one phase trains and on what; built by `setup_phase` for training and the range test alike."""
    index: int
    phase: Phase
    seed: int                  # shuffling, sampling and augmentation: seeded per phase, and per epoch from it
    net: nn.Module             # the model, or its classifier alone on precomputed activations
    optimizer: torch.optim.Optimizer
    train_ds: torch.utils.data.Dataset  # augmented training images (or activations)
    valid_ds: torch.utils.data.Dataset
    plain_ds: torch.utils.data.Dataset  # the training images as predict sees them
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
        order = epoch_indices(strata(self.data.labels[self.data.train_idx]), rc.oversample,
                              np.random.default_rng(seed))
        if extra is not None:
            order = np.concatenate([order, extra])
        return epoch_loader(self.train_ds, order, min(rc.batch_size, len(order)), seed, self.dev)

    def valid_loader(self):
        return torch.utils.data.DataLoader(self.valid_ds, self.recipe.batch_size * 2, num_workers=self.dev.workers)

    def train_mode(self) -> None:
        """Training mode, except for the BatchNorm of frozen groups (models.train_mode)."""
        if self.phase.precompute:
            self.net.train()
        else:
            train_mode(self.model)


def setup_phase(model: nn.Module, recipe: Recipe, index: int, data: FoldData, *, dev: Device, symmetry: str,
                feature_cache: dict | None = None, phase: Phase | None = None) -> PhaseSetup:
    """Freeze the phase's layer groups and build its optimizer and data. `phase` replaces the
    recipe's phase `index` (a rate the range test chose). A precompute phase trains the
    classifier alone, on cached activations of the frozen body."""
    phase = phase or recipe.phases[index]
    prepare = dev.place(model)
    groups = layer_groups(model)
    freeze(model, groups, phase.frozen)
    optimizer = make_optimizer(groups, phase, recipe.weight_decay)
    seed = recipe.seed * 1000 + index
    if phase.precompute:
        net, train_ds, valid_ds, prepare = _head_on_features(model, phase, data, dev, recipe, feature_cache,
                                                             pristine_body(recipe, index))
        plain_ds = train_ds
    else:
        imgs, labels, t, v = data.images[phase.size], data.labels, data.train_idx, data.valid_idx
        net, train_ds = model, ImageDataset(imgs[t], labels[t], train_augment(seed, symmetry))
        valid_ds, plain_ds = ImageDataset(imgs[v], labels[v]), ImageDataset(imgs[t], labels[t])
    return PhaseSetup(index=index, phase=phase, seed=seed, net=net, optimizer=optimizer, train_ds=train_ds,
                      valid_ds=valid_ds, plain_ds=plain_ds, prepare=prepare, model=model, recipe=recipe, data=data,
                      dev=dev)


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
    mined: np.ndarray | None = None  # the mining phase's hard examples, kept for its later epochs
    found: dict = field(default_factory=dict)  # phase index -> the rate its range test chose

    @classmethod
    def load(cls, path: Path, key: str) -> "Progress | None":
        if not path.exists():
            return None
        state = torch.load(path, map_location="cpu", weights_only=False)
        return cls(**state) if state.get("key") == key and state.keys() <= vars(cls(key)).keys() else None

    def save(self, path: Path) -> None:
        _save(dict(vars(self)), path)  # (not asdict: it would deep-copy every tensor)

    def finished(self, setup: PhaseSetup, epoch: int, swa: "WeightAverage") -> None:
        """Epoch `epoch` of `setup`'s phase is done: the state to resume from after it."""
        done = epoch + 1 == setup.phase.epochs
        self.phase, self.epoch = setup.index + done, 0 if done else epoch + 1
        self.model, self.rng = setup.model.state_dict(), torch.get_rng_state()
        self.optimizer = None if done else setup.optimizer.state_dict()
        self.swa = swa.state_dict()

    def first_epoch(self, setup: PhaseSetup) -> int:
        """Where `setup`'s phase starts: 0, or inside it (its optimizer restored) when resuming."""
        if setup.index != self.phase or self.optimizer is None:
            return 0
        setup.optimizer.load_state_dict(self.optimizer)
        return self.epoch


def fit(model: nn.Module, recipe: Recipe, data: FoldData, metric: Metric, out_dir: Path, *, key: str,
        dev: Device, symmetry: str = "hflip", feature_cache: dict | None = None,
        log: Callable = print) -> pd.DataFrame:
    """Train one fold through the recipe's phases. Writes to `out_dir`: last.pt, best.pt,
    snapshots/ (the weights at every cycle end), swa.pt (when a phase averages weights),
    hard_negatives.csv (when one mines), history.csv (one row per epoch), steps.csv (one per
    step), and state.pt after every epoch, from which a killed run resumes exactly."""
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.seed)  # dropout and drop-path; shuffling and augmentation seed their own
    progress = Progress.load(out_dir / "state.pt", key)
    if progress:
        model.load_state_dict(progress.model)
        torch.set_rng_state(progress.rng)
        log(f"  resuming at phase {progress.phase + 1}, epoch {progress.epoch + 1}")
    else:  # a fresh start: nothing from an earlier, different training may be mistaken for ours
        progress = Progress(key)
        _clear_outputs(out_dir)
    swa = WeightAverage(model, progress.swa)
    for pi in range(progress.phase, len(recipe.phases)):
        phase = _rate_found(model, recipe, pi, data, dev, symmetry, feature_cache, progress.found, log)
        setup = setup_phase(model, recipe, pi, data, dev=dev, symmetry=symmetry, feature_cache=feature_cache,
                            phase=phase)
        first = progress.first_epoch(setup)
        if phase.mine and first == 0:  # (a run resumed inside the phase keeps what it mined before)
            progress.mined = _mine(setup, out_dir / "hard_negatives.csv", log)
        extra = np.repeat(progress.mined, phase.mine_repeat) if phase.mine else None
        for epoch in range(first, phase.epochs):
            row = run_epoch(setup, epoch, extra, metric, progress, log)
            ckpt = _checkpoint(model, recipe, row, data.multilabel)
            if progress.best is None or metric.better(row[metric.name], progress.best):
                progress.best = row[metric.name]
                _save(ckpt, out_dir / "best.pt")
            if epoch + 1 in cycle_ends(phase):  # the low point of the rate: a snapshot for the ensemble
                _save(ckpt, out_dir / "snapshots" / snapshot_name(pi, epoch))
            if phase.swa and epoch + 1 in averaging_points(phase):
                swa.update()
            progress.finished(setup, epoch, swa)
            progress.save(out_dir / "state.pt")
    if swa.averaged is not None:
        swa.finish(recipe, data, metric, out_dir, dev, symmetry, log)
    _save(_checkpoint(model, recipe, progress.history[-1], data.multilabel), out_dir / "last.pt")
    write_csv(out_dir / "steps.csv", pd.DataFrame(progress.steps))
    write_csv(out_dir / "history.csv", pd.DataFrame(progress.history))
    (out_dir / "state.pt").unlink(missing_ok=True)
    return pd.DataFrame(progress.history)


def run_epoch(setup: PhaseSetup, epoch: int, extra: np.ndarray | None, metric: Metric, progress: Progress,
              log: Callable) -> dict:
    """Train one epoch of the phase, validate, add the epoch's rows to `progress`; returns the
    epoch's history row."""
    t0, phase, pi, dev = time.time(), setup.phase, setup.index, setup.dev
    where = f"phase {pi + 1}/{len(setup.recipe.phases)} epoch {epoch + 1}/{phase.epochs} {phase.size}px"
    train_dl, valid_dl = setup.loader(epoch, extra), setup.valid_loader()
    setup.train_mode()
    rows = train_one_epoch(setup.net, train_dl, setup.optimizer, phase=phase, epoch=epoch, prepare=setup.prepare,
                           dev=dev, label_smoothing=setup.recipe.label_smoothing, desc=where)
    valid_loss, probs = validate(setup.net, valid_dl, setup.prepare, dev)
    score = metric(setup.data.labels[setup.data.valid_idx], probs)
    train_loss = float(np.mean([r["loss"] for r in rows]))
    progress.steps += [{"phase": pi, "epoch": epoch, **r} for r in rows]
    progress.history.append({"phase": pi, "epoch": epoch, "size": phase.size, "train_loss": train_loss,
                             "valid_loss": valid_loss, metric.name: score, "seconds": time.time() - t0})
    log(f"  {where}  train_loss {train_loss:.4f}  valid_loss {valid_loss:.4f}  "
        f"{metric.name} {score:.4f}  {time.time() - t0:.0f}s")
    return progress.history[-1]


def _clear_outputs(out_dir: Path) -> None:
    shutil.rmtree(out_dir / "snapshots", ignore_errors=True)
    for f in ("swa.pt", "hard_negatives.csv"):
        (out_dir / f).unlink(missing_ok=True)


def _rate_found(model, recipe: Recipe, pi: int, data: FoldData, dev: Device, symmetry: str,
                feature_cache: dict | None, found: dict, log: Callable) -> Phase:
    """Phase `pi`, its rate chosen by a range test at its start when the recipe says "find" (once:
    a resumed run reuses the rate found before)."""
    phase = recipe.phases[pi]
    if phase.lr != "find":
        return phase
    if pi not in found:
        found[pi] = phase_range_test(model, recipe, pi, data, dev=dev, symmetry=symmetry,
                                     feature_cache=feature_cache).suggestion
        log(f"  phase {pi + 1}: the lr range test suggests {found[pi]:.2e}")
    return replace(phase, lr=found[pi])


def phase_range_test(model: nn.Module, recipe: Recipe, index: int, data: FoldData, *, dev: Device,
                     symmetry: str = "hflip", feature_cache: dict | None = None, steps: int = 100) -> RangeTest:
    """The lr range test (lr_find.py) under exactly the conditions of the recipe's phase `index`,
    on `model` as it stands at that phase's start: the same frozen groups and rate ratios (a
    phase whose rate is "find" tests one rate for all groups), batch size, weight decay, label
    smoothing, image size, sampling and augmentation; a precompute phase tests the head on activations."""
    phase = recipe.phases[index]
    setup = setup_phase(model, recipe, index, data, dev=dev, symmetry=symmetry, feature_cache=feature_cache,
                        phase=replace(phase, lr=1.0) if phase.lr == "find" else phase)
    loader = setup.loader(0)
    setup.train_mode()
    return range_test(setup.net, loader, setup.optimizer, setup.prepare, dev, steps=steps,
                      label_smoothing=recipe.label_smoothing)


def snapshot_name(phase_index: int, epoch: int) -> str:
    return f"phase{phase_index + 1}-epoch{epoch + 1}.pt"


def hardest(labels: np.ndarray, probs: np.ndarray, fraction: float) -> np.ndarray:
    """Positions of the `fraction` of examples with the highest loss, hardest first."""
    loss = example_losses(labels, probs)
    n = max(1, round(fraction * len(labels)))
    return np.argsort(-loss, kind="stable")[:n]


def _mine(setup: PhaseSetup, csv: Path, log: Callable) -> np.ndarray:
    t0, phase = time.time(), setup.phase
    mined = mine_hard_examples(setup.net, setup.plain_ds, setup.data, phase.mine, setup.prepare, setup.dev,
                               setup.recipe.batch_size * 2, csv)
    log(f"  mined {len(mined)} hardest training images, added {phase.mine_repeat}x to each epoch: "
        f"{csv}  {time.time() - t0:.0f}s")
    return mined


def mine_hard_examples(net, plain_ds, data: FoldData, fraction: float, prepare: Callable, dev: Device,
                       batch_size: int, csv: Path) -> np.ndarray:
    """Score the fold's training images as predict would (no augmentation), return positions
    (into data.train_idx) of the hardest, and write them to `csv` for a user to look at."""
    _, probs = validate(net, torch.utils.data.DataLoader(plain_ds, batch_size), prepare, dev)
    labels = data.labels[data.train_idx]
    picked = hardest(labels, probs, fraction)
    rows = data.train_idx[picked]
    names = data.classes or [str(c) for c in range(probs.shape[1])]
    guesses = decide(probs[picked], 0.5) if labels.ndim == 2 else probs[picked].argmax(1)
    write_csv(csv, pd.DataFrame({
        "id": data.ids[rows] if data.ids is not None else rows,
        "label": [describe(y, names) for y in labels[picked]],
        "predicted": [describe(g, names) for g in guesses],
        "loss": example_losses(labels[picked], probs[picked])}))
    return picked


@torch.no_grad()
def recompute_bn(model: nn.Module, batches, dev: Device) -> None:
    """BatchNorm running statistics recomputed as a plain average over `batches` (as
    torch.optim.swa_utils.update_bn does), except in frozen layer groups, whose statistics were
    never trained and stay the pretrained ones, as during training."""
    train_mode(model)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over every batch
    for x in batches:
        with dev.autocast():
            model(x)
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
    model.eval()


class WeightAverage:
    """Stochastic weight averaging: the running mean of the weights at the SWA phases' averaging
    points (torch's AveragedModel), and at the end its BatchNorm statistics recomputed."""

    def __init__(self, model: nn.Module, state: dict | None = None):
        self.model, self.averaged = model, None
        if state:
            self.averaged = AveragedModel(model)
            self.averaged.load_state_dict(state)

    def update(self) -> None:
        self.averaged = self.averaged or AveragedModel(self.model)
        self.averaged.update_parameters(self.model)

    def state_dict(self) -> dict | None:
        return self.averaged and self.averaged.state_dict()

    def finish(self, recipe: Recipe, data: FoldData, metric: Metric, out_dir: Path, dev: Device, symmetry: str,
               log: Callable) -> None:
        """The averaged weights' BatchNorm statistics belong to none of the averaged models: recompute
        them over one more epoch of training batches (as the SWA authors' bn_update does), then
        validate and save the averaged model as swa.pt. Training batches, not merely the training
        images: shuffled (our images come sorted by class, and single-class batches understate the
        variance) and augmented at the training batch size, the conditions the weights learned under.
        On plant-seedlings, recomputing a single snapshot's statistics that way gives back its
        validation loss (0.2406 trained, 0.2402-0.2406 recomputed); plain images in class order, 0.2942."""
        t0, net = time.time(), self.averaged.module
        pi, phase = max((i, p) for i, p in enumerate(recipe.phases) if p.swa)
        prepare = dev.place(net)
        freeze(net, layer_groups(net), phase.frozen)
        imgs, t = data.images[phase.size], data.train_idx
        train_ds = ImageDataset(imgs[t], data.labels[t], train_augment(recipe.seed, symmetry))
        train_dl = epoch_loader(train_ds, np.arange(len(t)), min(recipe.batch_size, len(t)), recipe.seed, dev)
        recompute_bn(net, (prepare(x) for x, _ in train_dl), dev)
        valid_ds = ImageDataset(imgs[data.valid_idx], data.labels[data.valid_idx])
        valid_loss, probs = validate(net, torch.utils.data.DataLoader(valid_ds, recipe.batch_size * 2), prepare, dev)
        score = metric(data.labels[data.valid_idx], probs)
        log(f"  SWA: averaged weights with BatchNorm recomputed at {phase.size}px  valid_loss {valid_loss:.4f}  "
            f"{metric.name} {score:.4f}  {time.time() - t0:.0f}s")
        row = {"phase": pi, "epoch": phase.epochs - 1, "size": phase.size, "valid_loss": valid_loss, metric.name: score}
        _save(_checkpoint(net, recipe, row, data.multilabel), out_dir / "swa.pt")


def epoch_loader(train_ds, order: np.ndarray, batch_size: int, seed: int, dev: Device):
    """One epoch's batches: the positions `order` into train_ds, shuffled, and their augmentation,
    both seeded by `seed`, so that a resumed run sees exactly the batches it would have seen."""
    if getattr(train_ds, "augment", None) is not None:
        train_ds.augment.set_random_seed(seed)
    return torch.utils.data.DataLoader(torch.utils.data.Subset(train_ds, order.tolist()), batch_size, shuffle=True,
                                       drop_last=True, generator=torch.Generator().manual_seed(seed),
                                       num_workers=dev.workers, worker_init_fn=_seed_worker,
                                       pin_memory=dev.device.type == "cuda")


def pristine_body(recipe: Recipe, phase_index: int) -> bool:
    """True while no earlier phase has trained the body: its activations are then the same for
    every fold and can be shared between them."""
    return all(p.precompute for p in recipe.phases[:phase_index])


def _head_on_features(model, phase: Phase, data: FoldData, dev: Device, recipe: Recipe,
                      cache: dict | None, shareable: bool):
    """The classifier and datasets of (activation, label) pairs for a precompute phase."""
    feats = cache.get(phase.size) if (cache is not None and shareable) else None
    if feats is None:
        feats = body_features(model, data.images[phase.size], dev, recipe.batch_size * 2).cpu()
        if cache is not None and shareable:
            cache[phase.size] = feats
    y = torch.tensor(data.labels)
    train_ds = torch.utils.data.TensorDataset(feats[data.train_idx], y[data.train_idx])
    valid_ds = torch.utils.data.TensorDataset(feats[data.valid_idx], y[data.valid_idx])
    return model.get_classifier(), train_ds, valid_ds, lambda x: x.to(dev.device)


def _checkpoint(model, recipe: Recipe, row: dict, multilabel: bool) -> dict:
    """What predicting needs: the weights, the architecture and image size they were trained at,
    and whether the outputs are tags (sigmoids) or one class (softmax)."""
    return {"model": model.state_dict(), "arch": recipe.arch, "num_classes": model.num_classes,
            "multilabel": multilabel, "size": row["size"], "phase": row["phase"], "epoch": row["epoch"],
            "history": row}


def _save(obj: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _seed_worker(worker_id: int) -> None:
    # each loader worker gets its own augmentation stream (albumentations would repeat one)
    info = torch.utils.data.get_worker_info()
    seed = torch.initial_seed() % 2**31
    aug = getattr(getattr(info.dataset, "dataset", info.dataset), "augment", None)  # through Subset
    if aug is not None:
        aug.set_random_seed(seed)
    np.random.seed(seed)
