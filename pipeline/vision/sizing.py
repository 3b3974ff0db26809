"""A starter recipe fitted to the data it meets: the phases whose size or epochs are AUTO get them
from the images once the run has listed them, before anything is decoded or trained.

- size: the images' own (the median shorter side of a sample, read from the files' headers),
  rounded to a multiple of 32, at most the model's native resolution (its ImageNet training
  size) and at least 64. Upscaling a 150 px image to 224 adds no detail and costs 2.2x.
- a precomputed head's epochs: about HEAD_STEPS optimizer steps: on cached activations they
  are nearly free, and a head stopped after 2 epochs of a few hundred images is beaten by a
  logistic regression on the same features.
- a fine-tuning phase's epochs: about TUNE_STEPS steps (few images: more epochs), within
  TUNE_EPOCHS; then, with a budget, the largest size and most epochs (in that order of
  preference, down to 128 px and 3 epochs before either gives more) whose estimate fits it.
- the folds trained (AUTO): as many as then still fit the budget, from one to all: small data
  gets a CV score over all of it and an ensemble of every fold's model for the test.

The estimate is a cost model of the whole run (decode, activations, training, validation, TTA
predictions) with per-pixel seconds measured for efficientnet_lite0 on a 2-core CPU
(benchmarks/RESULTS.md, issue 31). The epochs depend on the images alone, never on a timing,
so a run sized on one machine trains the same recipe on another, and a resumed run its own."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import timm

from pipeline.recipe import AUTO, Phase, Recipe

HEAD_STEPS, HEAD_EPOCHS = 100, (2, 20)
TUNE_STEPS, TUNE_EPOCHS = 150, (3, 12)
SMALLEST = 128  # the budget shrinks the size no further than this before it takes epochs away
SAMPLE = 200    # image headers read for the typical size

# seconds per pixel of one image on a 2-core CPU, efficientnet_lite0, batch 32: benchmarks/sizing_costs.py
# (RESULTS.md, issue 31); the cost goes with the pixels within 15% from 128 to 224 px
FORWARD = 1 / (595 * 128 ** 2)      # inference (activations, validation, each TTA view)
TRAIN_LATE = 1 / (250 * 128 ** 2)   # a training step with the early layers frozen
TRAIN_ALL = 1 / (150 * 128 ** 2)    # a training step of the whole network
DECODE = 1 / 250                    # per image and size, reading and resizing (cached after)
OVERHEAD = 20                       # model creation, checkpoints, diagnostics


@dataclass(frozen=True)
class ImageFacts:
    """What sizing reads of the data: counts, and the shorter side of a sample of training images."""
    train: int
    test: int
    side: int | None  # median shorter side in pixels; None when no header could be read
    classes: int


def image_facts(train_paths: list[Path], test: int, classes: int, seed: int = 0) -> ImageFacts:
    from PIL import Image  # (headers only: no pixels are decoded)
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(train_paths), min(SAMPLE, len(train_paths)), replace=False)
    sides = []
    for i in picked:
        try:
            with Image.open(train_paths[i]) as im:
                sides.append(min(im.size))
        except Exception:  # (an unreadable file is the decode stage's to report, with every other)
            continue
    return ImageFacts(len(train_paths), test, int(np.median(sides)) if sides else None, classes)


def native_size(arch: str) -> int:
    """The resolution the model's ImageNet weights were trained at (224 where timm doesn't say)."""
    cfg = timm.get_pretrained_cfg(arch)
    return int(cfg.input_size[-1]) if cfg is not None and cfg.input_size else 224


def own_size(facts: ImageFacts, arch: str) -> int:
    native = native_size(arch)
    if facts.side is None:
        return native
    return max(64, min(native, int(round(facts.side / 32)) * 32))


def sized(recipe: Recipe, facts: ImageFacts) -> Recipe:
    """`recipe` with every AUTO size, epochs and folds filled in from `facts` (and its budget)."""
    if not recipe.auto:
        return recipe
    biggest, most = own_size(facts, recipe.arch), _tune_epochs(recipe, facts)
    folds = recipe.train_folds
    if recipe.budget is None:
        return replace(_fill(recipe, facts, biggest, most), train_folds=None if folds == AUTO else folds)
    one = replace(recipe, train_folds=(0,)) if folds == AUTO else recipe
    fewest = min(most, TUNE_EPOCHS[0])
    options = [(size, epochs) for size in range(biggest, min(biggest, SMALLEST) - 1, -32)
               for epochs in range(most, fewest - 1, -1)]  # the largest size first, then the most epochs
    options += [(options[-1][0], epochs) for epochs in range(fewest - 1, 0, -1)]
    for size, epochs in options:
        fitted = _fill(one, facts, size, epochs)
        if minutes(fitted, facts) <= recipe.budget:
            break
    if folds != AUTO:
        return fitted  # (the last: the smallest there is, whose estimate the log shows over the budget)
    # then more folds while they fit: a CV score over more of the data, more models for the test
    for k in range(2, recipe.folds + 1):
        more = replace(fitted, train_folds=None if k == recipe.folds else tuple(range(k)))
        if minutes(more, facts) > recipe.budget:
            break
        fitted = more
    return fitted


def _tune_epochs(recipe: Recipe, facts: ImageFacts) -> int:
    steps = math.ceil(_fold_train(recipe, facts) / recipe.batch_size)
    low, high = TUNE_EPOCHS
    return min(high, max(low, math.ceil(TUNE_STEPS / steps)))


def _fill(recipe: Recipe, facts: ImageFacts, size: int, tune_epochs: int) -> Recipe:
    steps = math.ceil(_fold_train(recipe, facts) / recipe.batch_size)
    low, high = HEAD_EPOCHS
    head = min(high, max(low, math.ceil(HEAD_STEPS / steps)))

    def fill(p: Phase) -> Phase:
        return replace(p, size=size if p.size == AUTO else p.size,
                       epochs=(head if p.precompute else tune_epochs) if p.epochs == AUTO else p.epochs)
    return replace(recipe, phases=tuple(fill(p) for p in recipe.phases))


def _fold_train(recipe: Recipe, facts: ImageFacts) -> int:
    return facts.train - facts.train // recipe.folds


def minutes(recipe: Recipe, facts: ImageFacts) -> float:
    """The cost model's minutes for a whole run of `recipe` (every phase sized) on a 2-core CPU."""
    train = _fold_train(recipe, facts)
    valid = facts.train - train
    folds = len(recipe.fold_list())
    sizes = {p.size for p in recipe.phases}
    seconds = OVERHEAD + DECODE * (facts.train * len(sizes) + facts.test)
    precomputed = set()
    for p in recipe.phases:
        pixels = p.size ** 2
        if p.precompute:
            if p.size not in precomputed:  # (activations at a size are computed once per fold)
                seconds += folds * (train + valid) * FORWARD * pixels
                precomputed.add(p.size)
            continue
        step = TRAIN_ALL if not p.frozen else TRAIN_LATE
        seconds += folds * p.epochs * (train * step + valid * FORWARD) * pixels
    last = recipe.phases[-1].size ** 2
    seconds += folds * (valid + facts.test) * recipe.tta * FORWARD * last
    return seconds / 60
