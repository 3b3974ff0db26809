"""The shared trainer: a loop over a recipe's phases, each a loop over epochs of
`train_one_epoch` then `validate`. One fold at a time; resumable after every epoch.

A phase fixes the image size, which layer groups are frozen, the peak learning rate of each
group and the schedule. Progressive resizing is simply a later phase at a larger size on the same
weights. A phase with `precompute` runs the frozen body once over the images and trains the head
on the cached activations, which on a CPU turns minutes into seconds.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from . import PipelineError
from .files import atomic_path, write_csv
from .images import ImageCache
from .labels import decide, describe, example_losses, label_loss, probabilities, strata
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


@dataclass
class Device:
    """Where and how to run: CUDA with autocast and channels_last when present, else the CPU."""
    device: torch.device
    amp_dtype: torch.dtype | None
    workers: int
    channels_last: bool = True  # faster for convnets on both CUDA and CPU (oneDNN)

    @classmethod
    def pick(cls, name: str = "auto") -> "Device":
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise PipelineError(f"--device {name}: no CUDA device visible to torch; use --device cpu")
        dev = torch.device(name)
        if dev.type == "cuda":
            amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return cls(dev, amp, workers=min(8, os.cpu_count() or 1))
        # on a CPU, loader workers would take cores from the model; augmenting small cached
        # images in the main process costs far less than the forward/backward pass
        return cls(dev, None, workers=0)

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)


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


def train_one_epoch(model, loader, optimizer, phase: Phase, epoch: int, prepare: Callable,
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


def fit(model: nn.Module, recipe: Recipe, data: FoldData, metric: Metric, out_dir: Path, key: str,
        dev: Device, symmetry: str = "hflip", feature_cache: dict | None = None,
        log: Callable = print) -> pd.DataFrame:
    """Train one fold through every phase of the recipe. Writes to `out_dir`: last.pt, best.pt,
    snapshots/ (the weights at every cycle end), swa.pt (when the recipe averages weights),
    hard_negatives.csv (when it mines), history.csv (one row per epoch), steps.csv (one per
    step), and state.pt for resuming, which is only trusted when its `key` (a fingerprint of
    everything that shapes training) matches."""
    out_dir.mkdir(parents=True, exist_ok=True)
    groups = layer_groups(model)
    model.to(dev.device, memory_format=torch.channels_last if dev.channels_last else torch.preserve_format)
    mean, std = normalization(model)
    def prepare(x): return to_input(x, mean, std, dev.device, dev.channels_last)
    phases = recipe.all_phases()
    state = _resume_state(out_dir, key)
    torch.manual_seed(recipe.seed)  # dropout and drop-path; shuffling and augmentation seed their own
    if state:
        model.load_state_dict(state["model"])
        torch.set_rng_state(state["rng"])
        log(f"  resuming at phase {state['phase']}, epoch {state['epoch']}")
    else:  # a fresh start: nothing from an earlier, different training may be mistaken for ours
        shutil.rmtree(out_dir / "snapshots", ignore_errors=True)
        for f in ("swa.pt", "hard_negatives.csv"):
            (out_dir / f).unlink(missing_ok=True)
    history, steps = (state["history"], state["steps"]) if state else ([], [])
    best = state["best"] if state else None
    swa, mined = _averaged(model, state), state.get("mined") if state else None
    found = state.get("found", {}) if state else {}  # phase index -> rate chosen by an lr range test
    for pi, phase in enumerate(phases):
        if state and pi < state["phase"]:
            continue
        if phase.lr == "find":  # the range test at this phase's start picks its rate (once: a resumed run reuses it)
            if pi not in found:
                from .lr_find import phase_range_test  # (lr_find builds on this module)
                found[pi] = phase_range_test(model, recipe, pi, data, dev, symmetry, feature_cache).suggestion
                log(f"  phase {pi + 1}: the lr range test suggests {found[pi]:.2e}")
            phase = replace(phase, lr=found[pi])
        freeze(model, groups, phase.frozen)
        optimizer = make_optimizer(groups, phase, recipe.weight_decay)
        first_epoch = 0
        if state and pi == state["phase"] and state["optimizer"] is not None:
            optimizer.load_state_dict(state["optimizer"])
            first_epoch = state["epoch"]
        seed = recipe.seed * 1000 + pi
        net, train_ds, valid_ds, plain_ds, prep = phase_data(model, phase, pi, data, recipe, seed, symmetry,
                                                              dev, prepare, feature_cache)
        if not phase.mine:
            mined = None
        elif first_epoch == 0:  # (a run resumed inside the phase keeps the set it mined before)
            t0 = time.time()
            mined = mine_hard_examples(net, plain_ds, data, phase.mine, prep, dev, recipe.batch_size * 2,
                                       out_dir / "hard_negatives.csv")
            log(f"  mined {len(mined)} hardest training images, added {phase.mine_repeat}x to each epoch: "
                f"{out_dir / 'hard_negatives.csv'}  {time.time() - t0:.0f}s")
        for epoch in range(first_epoch, phase.epochs):
            t0 = time.time()
            # sampling seeded per epoch, like shuffling and augmentation: resuming repeats nothing
            order = epoch_indices(strata(data.labels[data.train_idx]), recipe.oversample,
                                  np.random.default_rng(seed * 100 + epoch))
            if mined is not None:
                order = np.concatenate([order, np.repeat(mined, phase.mine_repeat)])
            train_dl = epoch_loader(train_ds, order, min(recipe.batch_size, len(order)), seed * 100 + epoch, dev)
            valid_dl = torch.utils.data.DataLoader(valid_ds, recipe.batch_size * 2, num_workers=dev.workers)
            if phase.precompute:
                net.train()
            else:
                train_mode(model)
            where = f"phase {pi + 1}/{len(phases)} epoch {epoch + 1}/{phase.epochs} {phase.size}px"
            rows = train_one_epoch(net, train_dl, optimizer, phase, epoch, prep, dev,
                                   recipe.label_smoothing, where)
            valid_loss, probs = validate(net, valid_dl, prep, dev)
            score = metric(data.labels[data.valid_idx], probs)
            steps += [{"phase": pi, "epoch": epoch, **r} for r in rows]
            train_loss = float(np.mean([r["loss"] for r in rows]))
            history.append({"phase": pi, "epoch": epoch, "size": phase.size, "train_loss": train_loss,
                            "valid_loss": valid_loss, metric.name: score, "seconds": time.time() - t0})
            log(f"  {where}  train_loss {train_loss:.4f}  valid_loss {valid_loss:.4f}  "
                f"{metric.name} {score:.4f}  {time.time() - t0:.0f}s")
            ckpt = _checkpoint(model, recipe, history[-1], data.multilabel)
            if best is None or metric.better(score, best):
                best = score
                _save(ckpt, out_dir / "best.pt")
            if epoch + 1 in cycle_ends(phase):  # the low point of the rate: a snapshot for the ensemble
                _save(ckpt, out_dir / "snapshots" / snapshot_name(pi, epoch))
            if phase.swa and epoch + 1 in averaging_points(phase):
                swa = swa or AveragedModel(model)
                swa.update_parameters(model)
            last_epoch = epoch + 1 == phase.epochs
            _save({"key": key, "phase": pi + last_epoch, "epoch": 0 if last_epoch else epoch + 1,
                   "model": model.state_dict(), "optimizer": None if last_epoch else optimizer.state_dict(),
                   "rng": torch.get_rng_state(), "history": history, "steps": steps, "best": best,
                   "swa": swa and swa.state_dict(), "mined": mined, "found": found}, out_dir / "state.pt")
        state = None
    if swa is not None:
        _finish_swa(swa.module, recipe, data, metric, out_dir, dev, prepare, log, symmetry)
    _save(_checkpoint(model, recipe, history[-1], data.multilabel), out_dir / "last.pt")
    write_csv(out_dir / "steps.csv", pd.DataFrame(steps))
    write_csv(out_dir / "history.csv", pd.DataFrame(history))
    (out_dir / "state.pt").unlink(missing_ok=True)
    return pd.DataFrame(history)


def snapshot_name(phase_index: int, epoch: int) -> str:
    return f"phase{phase_index + 1}-epoch{epoch + 1}.pt"


def hardest(labels: np.ndarray, probs: np.ndarray, fraction: float) -> np.ndarray:
    """Positions of the `fraction` of examples with the highest loss, hardest first."""
    loss = example_losses(labels, probs)
    n = max(1, round(fraction * len(labels)))
    return np.argsort(-loss, kind="stable")[:n]


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


def _averaged(model: nn.Module, state: dict | None) -> AveragedModel | None:
    if not (state and state.get("swa")):
        return None
    swa = AveragedModel(model)
    swa.load_state_dict(state["swa"])
    return swa


def _finish_swa(net: nn.Module, recipe: Recipe, data: FoldData, metric: Metric, out_dir: Path,
                dev: Device, prepare: Callable, log: Callable, symmetry: str) -> None:
    """The averaged weights' BatchNorm statistics belong to none of the averaged models: recompute
    them over one more epoch of training batches (as the SWA authors' bn_update does), then
    validate and save the averaged model as swa.pt. Training batches, not merely the training
    images: shuffled (our images come sorted by class, and single-class batches understate the
    variance) and augmented at the training batch size, the conditions the weights learned under.
    On plant-seedlings, recomputing a single snapshot's statistics that way gives back its
    validation loss (0.2406 trained, 0.2402-0.2406 recomputed); plain images in class order, 0.2942."""
    t0 = time.time()
    pi, phase = max((i, p) for i, p in enumerate(recipe.all_phases()) if p.swa)
    freeze(net, layer_groups(net), phase.frozen)
    imgs, t = data.images[phase.size], data.train_idx
    train_ds = ImageDataset(imgs[t], data.labels[t], train_augment(recipe.seed, symmetry))
    train_dl = epoch_loader(train_ds, np.arange(len(t)), min(recipe.batch_size, len(t)), recipe.seed, dev)
    recompute_bn(net, (prepare(x) for x, _ in train_dl), dev)
    bs = recipe.batch_size * 2
    valid_dl = torch.utils.data.DataLoader(ImageDataset(imgs[data.valid_idx], data.labels[data.valid_idx]), bs)
    valid_loss, probs = validate(net, valid_dl, prepare, dev)
    score = metric(data.labels[data.valid_idx], probs)
    log(f"  SWA: averaged weights with BatchNorm recomputed at {phase.size}px  valid_loss {valid_loss:.4f}  "
        f"{metric.name} {score:.4f}  {time.time() - t0:.0f}s")
    row = {"phase": pi, "epoch": phase.epochs - 1, "size": phase.size, "valid_loss": valid_loss, metric.name: score}
    _save(_checkpoint(net, recipe, row, data.multilabel), out_dir / "swa.pt")


def phase_data(model, phase: Phase, pi: int, data: FoldData, recipe: Recipe, seed: int, symmetry: str,
                dev: Device, prepare: Callable, feature_cache: dict | None):
    """What a phase trains and on what: (net, augmented training set, validation set, training set
    as predict sees it, input preparation). A precompute phase trains the classifier alone, on
    cached activations of the frozen body."""
    if phase.precompute:
        net, train_ds, valid_ds, prep = _head_on_features(model, phase, data, dev, recipe, feature_cache,
                                                          pristine_body(recipe, pi))
        return net, train_ds, valid_ds, train_ds, prep
    imgs, labels, t, v = data.images[phase.size], data.labels, data.train_idx, data.valid_idx
    return (model, ImageDataset(imgs[t], labels[t], train_augment(seed, symmetry)), ImageDataset(imgs[v], labels[v]),
            ImageDataset(imgs[t], labels[t]), prepare)


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
    return all(p.precompute for p in recipe.all_phases()[:phase_index])


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


def _resume_state(out_dir: Path, key: str) -> dict | None:
    f = out_dir / "state.pt"
    if not f.exists():
        return None
    state = torch.load(f, map_location="cpu", weights_only=False)
    return state if state.get("key") == key else None


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
