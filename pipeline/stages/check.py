"""`pipeline check`: the sanity checks worth running before a long training run.

1. One training batch as the model receives it (augmented, normalised, then mapped back to
   pixels), each image titled with its label: wrong labels, channels or normalisation show.
2. Overfit a few dozen images: no augmentation, no weight decay, dropout or label smoothing,
   the same batch every step. A network that can learn memorises them (loss near zero); if it
   cannot, labels, learning rate or frozen weights are wrong.
Images nearly constant once decoded (vision/spread.py), which a network may still memorise, are
a warning on the first line.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pipeline.core.device import Device
from pipeline.recipe import Phase
from pipeline.stages.context import Run
from pipeline.core.plots import image_grid, pyplot, save_png
from pipeline.stages.train import fresh_model
from pipeline.training.epochs import epoch_loader
from pipeline.training.models import freeze, layer_groups, normalization
from pipeline.training.step import scaler_for, train_step
from pipeline.training.tasks import Task
from pipeline.vision.inputs import Images
from pipeline.vision.spread import nearly_constant


@dataclass
class Overfit:
    passed: bool
    losses: list[float]
    message: str


def overfit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, dev: Device, task: Task, steps: int = 200,
            lr: float = 1e-3, target: float = 0.05) -> Overfit:
    """Train `model` on the single batch (x, y) until its loss is below `target` or `steps` run out."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        return Overfit(False, [], "every weight is frozen: nothing can learn (unfreeze a layer group)")
    for m in model.modules():  # no regularisation: the point is to memorise
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    if hasattr(model, "drop_rate"):
        model.drop_rate = 0.0
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    scaler = scaler_for(dev)
    for _ in range(steps):
        loss = train_step(model, optimizer, scaler, x, y, dev, task)
        losses.append(loss.item())
        if not np.isfinite(losses[-1]) or losses[-1] < target:
            break
    first, last = losses[0], losses[-1]
    if last < target:
        return Overfit(True, losses, f"memorised {len(y)} images: loss {first:.3f} -> {last:.4f} in {len(losses)} steps")
    if not np.isfinite(last):
        return Overfit(False, losses, f"the loss became {last}: the learning rate ({lr:g}) is too high")
    if last > 0.9 * first:
        why = "the weights barely move: frozen layer groups, or a learning rate far too low"
    else:
        why = "it learns, but cannot fit them: labels that do not match the images (look at the batch PNG), " \
              "a learning rate too low, or too much of the network frozen"
    return Overfit(False, losses, f"could not memorise {len(y)} images in {len(losses)} steps "
                                  f"(loss {first:.3f} -> {last:.3f}, wanted < {target}): {why}")


def labelled_batch(x: torch.Tensor, y: torch.Tensor, classes: list[str], task: Task, mean, std, path,
                   n: int = 16) -> None:
    """The model's inputs mapped back to pixels, titled with their labels."""
    pixels = (x[:n].float().cpu() * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1))
    pixels = pixels.clamp(0, 1).permute(0, 2, 3, 1).numpy()
    titles = [task.describe(label, classes) for label in y[:n].cpu().numpy()]
    image_grid(pixels, titles, path, cell=(2.6, 2.8), fontsize=8)


def check(r: Run, images: int = 48, steps: int = 200, size: int = 64, lr: float = 1e-3,
          frozen: tuple[str, ...] = (), shuffle_labels: bool = False) -> tuple[bool, str]:
    """Both checks on the competition's data and the recipe's model; files in <run>/check/."""
    out = r.run_dir / "check"
    rng = np.random.default_rng(r.recipe.seed)
    y_all = r.targets
    groups = r.comp.task.strata(y_all)  # every class (or rarest tag) represented
    per_class = -(-images // len(np.unique(groups)))
    picked = np.concatenate([rng.permutation(np.flatnonzero(groups == c))[:per_class]
                             for c in np.unique(groups)])[:images]
    r.train_images.prepare([size])
    imgs, y = r.train_images[size][picked], y_all[picked]
    warning = nearly_constant(imgs, r.data_dir)
    if shuffle_labels:  # what a broken label join looks like: a deliberate failure
        y = rng.permutation(y)
    model = fresh_model(r)
    inputs, phase = Images({size: imgs}, r.comp.symmetry), Phase(size=size, epochs=1, lr=lr)
    prepare, (mean, std) = inputs.placer(model, r.dev), normalization(model)

    augmented = inputs.dataset(np.arange(len(y)), y, phase, r.recipe, r.dev, augment=r.recipe.seed)
    xb, yb = next(iter(epoch_loader(augmented, np.arange(len(y)), min(r.recipe.batch_size, len(y)), 0, r.dev)))
    labelled_batch(inputs.on_device(prepare, 0, r.dev)(xb), yb, r.comp.classes, r.comp.task, mean, std,
                   out / "batch.png")

    freeze(model, layer_groups(model), frozen)
    x = prepare(torch.from_numpy(imgs))
    result = overfit(model, x, torch.from_numpy(y).to(r.dev.device), r.dev, r.comp.task, steps, lr)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(result.losses or [np.nan])
    ax.set_yscale("log")
    ax.set_xlabel("step (the same batch every step)")
    ax.set_ylabel("training loss")
    verdict = "PASS" if result.passed else "FAIL"
    ax.set_title(f"{verdict}: overfit {len(y)} images at {size}px", fontsize=9)
    fig.tight_layout()
    save_png(fig, out / "overfit.png")
    return result.passed, ((f"WARNING: {warning}\n" if warning else "")
                           + f"labelled batch (as the model sees it): {out / 'batch.png'}\n"
                           f"{verdict}: {result.message}\nloss curve: {out / 'overfit.png'}")
