"""A training recipe: a readable list of phases plus the settings that hold across them.

The phases listed are exactly the phases that train, in order; the SWA and hard-negative
mining rounds are phases too, built from the phase they continue by `swa_round` and
`mining_round`. SETTINGS lists what a command line may override (cli.py, Recipe.with_overrides)."""
from __future__ import annotations

from argparse import ArgumentTypeError
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from pipeline import PipelineError
from pipeline.core.keys import affects

SCHEDULES = ("1cycle", "sgdr", "constant")
# BatchNorm statistics in the layers a phase trains (see Recipe.batchnorm)
BATCHNORM = ("adapt", "frozen", "batch")
SPLITS = ("stratified", "time")
TTA_VIEWS = (1, 2, 4, 8)  # plain; + hflip; + vflip and both; + the transposed four (dihedral group)
# a phase's size or epochs left to the data: set when the run has seen its images (vision/sizing.py)
AUTO = "auto"


@dataclass(frozen=True)
class Phase:
    epochs: int | str = affects("train")  # or AUTO: from the number of images (and the recipe's budget)
    lr: float | tuple[float, ...] | str = affects("train")  # peak rate; a tuple: one per layer group; "find": lr range test
    size: int | str | None = affects("train", default=None)  # images: the square side in pixels (AUTO: from the
                                                              # images' own, up to the model's); tables: none
    frozen: tuple[str, ...] = affects("train", default=())  # layer groups whose weights stay fixed ("early", "late", "head")
    schedule: str = affects("train", default="1cycle")  # "1cycle" (cyclical momentum 0.95-0.85-0.95), "sgdr", "constant"
    cycle_len: int = affects("train", default=1)  # sgdr: epochs in the first cycle
    cycle_mult: int = affects("train", default=1)  # sgdr: each cycle is this many times longer than the one before
    precompute: bool = affects("train", default=False)  # body frozen: cache its activations once and train the head on them
    swa: bool = affects("train", default=False)  # average the weights at this phase's cycle ends (every
                                                 # epoch if constant); swa_round() builds the usual SWA phase
    mine: float = affects("train", default=0.0)  # before the phase: add this fraction of hardest training images...
    mine_repeat: int = affects("train", default=2)  # ...this many extra times to every epoch of the phase (mining_round())

    @property
    def pixels(self) -> str:
        """How the logs name the phase's size: "128px", or "" for a table's rows."""
        return f"{self.size}px" if self.size else ""

    @property
    def auto(self) -> bool:
        return AUTO in (self.size, self.epochs)


@dataclass(frozen=True)
class Trees:
    """Gradient-boosted trees (LightGBM) for a table: `arch="lightgbm"` (tables/trees.py). Each fold
    stops on the last block of its own training rows and is refitted on all of them."""
    leaves: int = affects("train", default=127)             # num_leaves: each tree's size
    lr: float = affects("train", default=0.1)               # learning_rate: each tree's share
    min_leaf: int = affects("train", default=100)           # min_data_in_leaf: rows a leaf needs
    feature_fraction: float = affects("train", default=0.8)  # columns each tree sees
    bagging: float = affects("train", default=0.8)          # rows each tree sees (redrawn every tree)
    l2: float = affects("train", default=0.0)               # lambda_l2: leaf values' regularisation
    rounds: int = affects("train", default=3000)            # the most trees
    patience: int = affects("train", default=50)            # rounds without a better stopping loss before stopping


@dataclass(frozen=True)
class Recipe:
    # affects(...): the stages whose results a setting changes, from which their keys are made (keys.py)
    phases: tuple[Phase, ...] = affects("train")  # exactly the phases that train, in order (SWA and mining rounds included)
    arch: str = affects("train", default="efficientnet_lite0")  # any timm model name
    weights: str = affects("train", default="imagenet")  # "imagenet", "none" (train from scratch) or a weights file
    batch_size: int = affects("train", default=32)
    weight_decay: float = affects("train", default=0.01)  # AdamW, decoupled
    label_smoothing: float = affects("train", default=0.0)
    random_crop: float = affects("train", default=0.0)  # photos: train on random crops of at least this share of the area; 0: none
    oversample: str | float = affects("train", default="none")  # rare classes per epoch: "none", "max", or a power in [0, 1]
    # BatchNorm: "adapt": before a precomputed head, its running statistics are recomputed on the
    # fold's training images, so the head fits the features that batch statistics give later;
    # "frozen": the pretrained running statistics throughout (Keras' advice); "batch": as
    # fast.ai has it (the head meets other features once the body trains: benchmarks/RESULTS.md, issue 17)
    batchnorm: str = affects("train", default="adapt")
    folds: int = affects("folds", default=5)
    # "stratified": K folds by class (or target bins); "time": K blocks of the test period's length,
    # the last ending where the training data ends, each trained on the rows before it only (tables)
    split: str = affects("folds", default="stratified")
    # None: every fold; a subset trades CV for time; AUTO: as many as the budget allows (vision/sizing.py)
    train_folds: tuple[int, ...] | str | None = affects(default=None)
    tta: int = affects("predict", default=2)  # test-time views averaged, one of TTA_VIEWS
    checkpoint: str = affects("predict", default="last")  # which weights predict: "last" epoch or "best" validation score
    snapshots: int | tuple[str, ...] = affects("predict", default=0)  # predict with the last N cycle-end snapshots, or these by name
    mixup: float = affects("train", default=0.0)  # blend training images in pairs: Beta(mixup, mixup) shares; 0: off
    cutmix: float = affects("train", default=0.0)  # paste a box of another image: Beta(cutmix, cutmix) of its area; 0: off
    ema: float = affects("train", default=0.0)  # keep an exponential moving average of the weights, this
                                                # decay per step, and predict with it too (ema.pt); 0: none
    seed: int = affects("folds", "train", default=0)
    trees: Trees = affects("train", default=Trees())  # arch "lightgbm": the trees' settings; phases none
    # AUTO phases: the minutes of training on a 2-core CPU their epochs are chosen to fit (vision/sizing.py);
    # None: epochs from the number of images alone. (In no key: the epochs it gives are.)
    budget: float | None = affects(default=None)

    def fold_list(self) -> list[int]:
        return list(range(self.folds)) if self.train_folds is None else list(self.train_folds)

    @property
    def boosted(self) -> bool:
        """Gradient-boosted trees (a table's), not a network: no phases, no checkpoints."""
        return self.arch == "lightgbm"

    @property
    def auto(self) -> bool:
        """Some phase's size or epochs, or the folds trained, are left to the data (sized when the
        run has read it)."""
        return self.train_folds == AUTO or any(p.auto for p in self.phases)

    @property
    def averages_weights(self) -> bool:
        return any(p.swa for p in self.phases)

    def with_overrides(self, **changes) -> "Recipe":
        """A copy with the given SETTINGS replaced (None leaves a setting as it is). `swa` and
        `hard_negatives` replace the recipe's SWA or mining phases with one round each (0: none)."""
        unknown = sorted(set(changes) - {s.name for s in SETTINGS})
        if unknown:
            raise PipelineError(f"no recipe setting {unknown[0]!r}; settings: {', '.join(s.name for s in SETTINGS)}")
        changes = {k: v for k, v in changes.items() if v is not None}
        swa, schedule, mine = (changes.pop(k, None) for k in ("swa", "swa_schedule", "hard_negatives"))
        if changes.get("train_folds") == "all":
            changes["train_folds"] = None
        recipe = replace(self, **changes)
        if recipe.boosted and not self.boosted:  # (--arch lightgbm on a network's recipe: trees have no phases)
            recipe = replace(recipe, phases=())
        if schedule is not None and swa is None:
            raise PipelineError(f"swa_schedule={schedule!r} needs the number of SWA epochs (--swa EPOCHS)")
        if mine is not None:
            new = mining_round(ordinary(recipe.phases), fraction=mine) if mine else None
            recipe = replace(recipe, phases=_replace_rounds(recipe.phases, "mine", new))
        if swa is not None:
            new = swa_round(ordinary(recipe.phases), epochs=swa, schedule=schedule or "sgdr") if swa else None
            recipe = replace(recipe, phases=_replace_rounds(recipe.phases, "swa", new))
        return recipe


def ordinary(phases: tuple[Phase, ...]) -> Phase:
    """The last phase that is neither an SWA nor a mining round: the one the rounds continue."""
    found = [p for p in phases if not (p.swa or p.mine)]
    if not found:
        raise PipelineError("an SWA or mining round continues a phase that is neither; the recipe has none")
    return found[-1]


def swa_round(last: Phase, epochs: int, schedule: str = "sgdr") -> Phase:
    """Stochastic weight averaging after `last`: `epochs` more at its size and frozen groups, at
    half its peak rates, the weights averaged at every epoch's end: the rate annealed to 0 each
    epoch ("sgdr", one cycle an epoch) or held ("constant"). BatchNorm is recomputed afterwards."""
    if schedule not in ("sgdr", "constant"):
        raise PipelineError(f"swa schedule {schedule!r}; use 'sgdr' or 'constant'")
    return replace(_continue(last), epochs=epochs, schedule=schedule, swa=True)


def mining_round(last: Phase, fraction: float, repeat: int = 2, epochs: int = 1) -> Phase:
    """Hard-negative mining after `last`: the `fraction` of the fold's training images the model
    gets most wrong, added `repeat` more times to each of `epochs` more epochs (1cycle) at
    `last`'s size and frozen groups, at half its peak rates."""
    if not 0 < fraction < 1:
        raise PipelineError(f"hard negatives {fraction}: a fraction of the training images in (0, 1); 0 for none")
    return replace(_continue(last), epochs=epochs, schedule="1cycle", mine=fraction, mine_repeat=repeat)


def _continue(last: Phase) -> Phase:
    rates = (last.lr if last.lr == "find" else
             tuple(r / 2 for r in last.lr) if isinstance(last.lr, tuple) else last.lr / 2)
    return replace(last, lr=rates, precompute=False, swa=False, mine=0.0, cycle_len=1, cycle_mult=1)


def follow(round_: Phase, before: Phase, after: Phase) -> Phase:
    """An SWA or mining round that continued `before` as the helpers build it, built again to
    continue `after` (a tuning trial changed that phase's rate or size); a round written some
    other way stays as it is."""
    own = dict(epochs=round_.epochs, schedule=round_.schedule, swa=round_.swa, mine=round_.mine,
               mine_repeat=round_.mine_repeat)
    return replace(_continue(after), **own) if round_ == replace(_continue(before), **own) else round_


def _replace_rounds(phases: tuple[Phase, ...], kind: str, new: Phase | None) -> tuple[Phase, ...]:
    """`phases` without those of `kind` ("swa" or "mine"), plus `new`: a mining round goes before
    any SWA phase (the averaged weights are the run's last word), an SWA round last."""
    kept = [p for p in phases if not getattr(p, kind)]
    if new is not None:
        at = next((i for i, p in enumerate(kept) if p.swa), len(kept)) if kind == "mine" else len(kept)
        kept.insert(at, new)
    return tuple(kept)


# The parsers of the settings that are not plain numbers or words: argparse names the flag before
# an ArgumentTypeError's text ("argument --oversample: ..."); a ValueError would read "invalid _oversample value"
def _folds(text: str) -> tuple[int, ...] | str:
    try:
        return "all" if text == "all" else tuple(int(k) for k in text.split(","))
    except ValueError:
        raise ArgumentTypeError(f"{text!r}: 'all' or fold numbers, e.g. 0 or 0,1") from None


def _snapshots(text: str) -> int | tuple[str, ...]:
    return int(text) if text.isdigit() else tuple(text.split(","))  # (names are checked against the recipe's)


def _oversample(text: str) -> str | float:
    if text in ("none", "max"):
        return text
    try:
        power = float(text)
    except ValueError:
        power = None
    if power is None or not 0 <= power <= 1:
        raise ArgumentTypeError(f"{text!r}: none, max (up to the largest class) or a power in [0, 1]")
    return power


@dataclass(frozen=True)
class Setting:
    """A recipe setting a command line may override, as --name-with-dashes."""
    name: str
    parse: Callable[[str], Any]
    help: str
    choices: tuple | None = None
    metavar: str | None = None


# the one list of what a command line may change: the CLI's flags and Recipe.with_overrides
SETTINGS = (
    Setting("arch", str, "timm model name; a table's: embeddings, embeddings-W-W (dense widths) or lightgbm (trees)"),
    Setting("weights", str, "'imagenet', 'none' (train from scratch) or a weights file"),
    Setting("folds", int, "number of folds K"),
    Setting("split", str, "folds: stratified by class, or time-ordered blocks of the test period's length, "
            "each trained on the rows before it (a dated table)", choices=SPLITS),
    Setting("train_folds", _folds, "folds to train: 'all' or e.g. 0,1"),
    Setting("tta", int, "test-time views averaged", choices=TTA_VIEWS),
    Setting("batch_size", int, "images per batch"),
    Setting("checkpoint", str, "which weights predict", choices=("last", "best")),
    Setting("seed", int, "seeds folds, initialisation, sampling and augmentation"),
    Setting("random_crop", float, "train on random-resized crops keeping at least this share of each image's "
            "area (photos; e.g. 0.75); 0: shift and scale jitter only", metavar="SHARE"),
    Setting("oversample", _oversample, "rare classes per epoch: none, max (up to the largest class) or a power in [0, 1]"),
    Setting("batchnorm", str, "BatchNorm statistics: recomputed on the fold's images before a precomputed head "
            "(adapt), the pretrained ones throughout (frozen), or fast.ai's (batch)", choices=BATCHNORM),
    Setting("snapshots", _snapshots, "predict with the last N cycle-end snapshots of each fold, or these names "
            "(e.g. phase4-epoch3,phase5-epoch2; `pipeline snapshots` lists them); 0: the checkpoint"),
    Setting("swa", int, "SWA round: this many more epochs at the last phase's size, weights averaged at each "
            "epoch end, BatchNorm recomputed; replaces the recipe's SWA phases; 0: none", metavar="EPOCHS"),
    Setting("swa_schedule", str, "SWA learning rate: annealed to 0 every epoch (sgdr) or held (constant)",
            choices=("sgdr", "constant")),
    Setting("mixup", float, "mixup: blend each training batch with a shuffled copy of itself, shares drawn "
            "from Beta(ALPHA, ALPHA) (e.g. 0.2), the loss shared the same way; 0: off", metavar="ALPHA"),
    Setting("cutmix", float, "cutmix: paste a box of a shuffled partner into each training image, its area "
            "drawn from Beta(ALPHA, ALPHA) (e.g. 1.0); with --mixup, one of the two per batch; 0: off",
            metavar="ALPHA"),
    Setting("ema", float, "also predict with an exponential moving average of the weights, this decay per "
            "training step (e.g. 0.998: about the last 500 steps), BatchNorm recomputed; 0: none", metavar="DECAY"),
    Setting("hard_negatives", float, "mining round: this fraction of each fold's hardest training images added "
            "twice more to one more epoch; replaces the recipe's mining phases; 0: none", metavar="FRACTION"),
)


def differential(lr: float, groups: int = 3, ratio: float = 3.0) -> tuple[float, ...]:
    """fast.ai's differential rates: (lr/9, lr/3, lr) for three groups, earliest layers slowest."""
    return tuple(lr / ratio ** (groups - 1 - i) for i in range(groups))


def sgdr_cycle_epochs(epochs: int, cycle_len: int, cycle_mult: int) -> list[int]:
    """Lengths of the SGDR cycles filling `epochs`; an error if they don't fill it exactly."""
    cycles, total, n = [], 0, cycle_len
    while total < epochs:
        cycles.append(n)
        total += n
        n *= cycle_mult
    if total != epochs:
        fits = [cycle_len * sum(cycle_mult ** i for i in range(k)) for k in range(1, 6)]
        raise PipelineError(
            f"sgdr with cycle_len={cycle_len}, cycle_mult={cycle_mult} fills {fits} epochs, "
            f"not {epochs}: set the phase's epochs to one of those")
    return cycles


def averaging_points(phase: Phase) -> list[int]:
    """Epochs (1-based) after which SWA averages the weights: the end of every cycle (the low
    points of a cyclical rate), or of every epoch under a constant rate."""
    if phase.schedule == "constant":
        return list(range(1, phase.epochs + 1))
    return cycle_ends(phase)


def cycle_ends(phase: Phase) -> list[int]:
    """Epochs (1-based) at which a cycle of the phase ends: the lr's low points, where snapshots
    are taken. A 1cycle or constant phase is one cycle."""
    if phase.schedule != "sgdr":
        return [phase.epochs]
    ends = np.cumsum(sgdr_cycle_epochs(phase.epochs, phase.cycle_len, phase.cycle_mult))
    return [int(e) for e in ends]


def fold_problem(folds: list[int] | tuple[int, ...], n_folds: int) -> str | None:
    """What is wrong with a list of folds to train (`--train-folds`, `tune --folds`), or None."""
    bad = [f for f in folds if not 0 <= f < n_folds]
    if bad:
        return f"{bad} outside 0..{n_folds - 1}"
    twice = next((f for f in folds if folds.count(f) > 1), None)
    if twice is not None:  # (its OOF predictions would count those images twice)
        return f"names fold {twice} twice; list each fold once, e.g. 0,1"
    return None


def validate(recipe: Recipe, group_names: list[str], where: str, max_views: int = 8, images: bool = True) -> None:
    """Check a recipe against the model's layer groups (and the views the competition's symmetry
    allows) before any training starts. `images` False: a table's, whose phases have no size and
    whose rows have no views."""
    if recipe.tta not in TTA_VIEWS:
        raise PipelineError(f"{where}: tta={recipe.tta}; use one of {TTA_VIEWS}")
    if not images and recipe.tta != 1:
        raise PipelineError(f"{where}: tta={recipe.tta}, but a table's rows have no test-time views; use tta=1")
    if recipe.tta > max_views:
        raise PipelineError(f"{where}: tta={recipe.tta}, but flipped images change this competition's "
                            f"labels; use --tta {max_views} or fewer")
    if recipe.batchnorm not in BATCHNORM:
        raise PipelineError(f"{where}: batchnorm={recipe.batchnorm!r}; use one of {BATCHNORM}")
    if recipe.checkpoint not in ("last", "best"):
        raise PipelineError(f"{where}: checkpoint={recipe.checkpoint!r}; use 'last' or 'best'")
    if recipe.batch_size < 1:
        raise PipelineError(f"{where}: batch_size={recipe.batch_size}; images per batch, at least 1 (e.g. 32)")
    if not 0 <= recipe.seed < 2 ** 32:
        raise PipelineError(f"{where}: seed={recipe.seed}; a whole number from 0 to 2**32 - 1")
    if isinstance(recipe.snapshots, int) and recipe.snapshots < 0:
        raise PipelineError(f"{where}: snapshots={recipe.snapshots}; 0 (off), a count, or snapshot names")
    if recipe.mixup < 0 or recipe.cutmix < 0:
        raise PipelineError(f"{where}: mixup={recipe.mixup}, cutmix={recipe.cutmix}; each an alpha > 0 "
                            f"(e.g. mixup 0.2, cutmix 1.0), or 0 for off")
    if not 0 <= recipe.ema < 1:
        raise PipelineError(f"{where}: ema={recipe.ema}; the moving average's decay per step, in (0, 1), "
                            f"e.g. 0.998; 0 for none")
    if not 0 <= recipe.random_crop <= 1:
        raise PipelineError(f"{where}: random_crop={recipe.random_crop}; the smallest share of an image's area "
                            f"a crop keeps, in (0, 1]; 0 for no random crops")
    if recipe.folds < 2:
        raise PipelineError(f"{where}: folds={recipe.folds}; cross-validation needs at least 2")
    problem = fold_problem(recipe.fold_list(), recipe.folds) if recipe.train_folds != AUTO else None
    if problem:
        raise PipelineError(f"{where}: train_folds {problem}")
    if recipe.boosted:
        _validate_trees(recipe, where, images)
        return
    if not recipe.phases:
        raise PipelineError(f"{where}: the recipe has no phases")
    phases = recipe.phases
    for i, p in enumerate(phases):
        at = f"{where}, phase {i + 1}"  # (numbered from 1, as the logs number them)
        unknown = [g for g in p.frozen if g not in group_names]
        if unknown:
            raise PipelineError(f"{at}: unknown layer group {unknown[0]!r}; "
                                f"this model's groups are {', '.join(group_names)}")
        if isinstance(p.lr, str) and p.lr != "find":
            raise PipelineError(f"{at}: lr={p.lr!r}; give a number, one per layer group, or 'find'")
        if isinstance(p.lr, tuple) and len(p.lr) != len(group_names):
            raise PipelineError(f"{at}: {len(p.lr)} learning rates for {len(group_names)} layer groups "
                                f"({', '.join(group_names)}); give one each or a single number")
        if p.schedule not in SCHEDULES:
            raise PipelineError(f"{at}: unknown schedule {p.schedule!r}; use one of {SCHEDULES}")
        if p.auto and not images:
            raise PipelineError(f"{at}: {AUTO!r} sizes and epochs are chosen from images; a table's phases "
                                f"give their epochs")
        if p.schedule == "sgdr" and p.epochs != AUTO:
            try:
                sgdr_cycle_epochs(p.epochs, p.cycle_len, p.cycle_mult)
            except PipelineError as e:
                raise PipelineError(f"{at}: {e}") from None
        if p.precompute and set(group_names[:-1]) - set(p.frozen):
            raise PipelineError(f"{at}: precompute needs every body group frozen: "
                                f"set frozen={tuple(group_names[:-1])}")
        if p.epochs != AUTO and not (isinstance(p.epochs, int) and p.epochs >= 1):
            raise PipelineError(f"{at}: epochs={p.epochs!r}; a whole number >= 1, or {AUTO!r}")
        if images and p.size != AUTO and not (isinstance(p.size, int) and p.size >= 8):
            raise PipelineError(f"{at}: size={p.size!r}; an image size of 8 or more, or {AUTO!r} (size=...)")
        if not images and p.size is not None:
            raise PipelineError(f"{at}: size={p.size}, but a table's rows have no size; leave it out")
        if p.mine and (i == 0 or not 0 < p.mine < 1 or p.mine_repeat < 1):
            raise PipelineError(f"{at}: mining needs a trained model (a phase before it), "
                                f"a fraction in (0, 1) and mine_repeat >= 1")
    if recipe.budget is not None and not recipe.budget > 0:
        raise PipelineError(f"{where}: budget={recipe.budget}; minutes of training, > 0 (or None)")
    if recipe.auto:
        return  # (the rest counts epochs: checked again once the data has sized them)
    points = sum(len(averaging_points(p)) for p in phases if p.swa)
    if points == 1:
        raise PipelineError(f"{where}: SWA would average a single set of weights; average over more "
                            f"epochs (swa_round(epochs >= 2)) or cycles (schedule 'sgdr' or 'constant')")
    # checked now, not when predict looks for them after training
    taken = [f"phase{i + 1}-epoch{e}" for i, p in enumerate(phases) for e in cycle_ends(p)]
    if isinstance(recipe.snapshots, int) and recipe.snapshots > len(taken):
        raise PipelineError(f"{where}: snapshots={recipe.snapshots}, but the recipe takes {len(taken)} "
                            f"(one per cycle end: {', '.join(taken)})")
    if isinstance(recipe.snapshots, tuple):
        missing = [n for n in recipe.snapshots if n.removesuffix(".pt") not in taken]
        if missing:
            raise PipelineError(f"{where}: no snapshot {missing[0]!r}: the recipe takes one per cycle end, "
                                f"{', '.join(taken)}")


def _validate_trees(recipe: Recipe, where: str, images: bool) -> None:
    t = recipe.trees
    if images:
        raise PipelineError(f"{where}: arch 'lightgbm' trains trees on a table's columns, and this competition "
                            f"has images; use a timm model name")
    if recipe.phases:
        raise PipelineError(f"{where}: arch 'lightgbm' trains trees, which have no phases; leave phases=() "
                            f"(the trees' settings are Recipe(trees=Trees(...)))")
    if t.leaves < 2 or t.min_leaf < 1 or t.rounds < 1 or t.patience < 1:
        raise PipelineError(f"{where}: {t}: leaves >= 2, min_leaf, rounds and patience >= 1")
    if not t.lr > 0 or t.l2 < 0 or not 0 < t.feature_fraction <= 1 or not 0 < t.bagging <= 1:
        raise PipelineError(f"{where}: {t}: lr > 0, l2 >= 0, feature_fraction and bagging in (0, 1]")


def starter(size: int | str = AUTO, cpu_size: int | str = AUTO, symmetry: str = "hflip", random_crop: float = 0.0,
            minutes: float = 10) -> dict[str, Recipe]:
    """Recipes a competition starts from until it has tuned its own: plant-seedlings' recipes,
    generalised. cpu: one fold (as many as `minutes` allow, when sized); the head on cached
    activations, then all but the early layers
    (their backward pass is the costly part) at `cpu_size`. gpu: every fold; the head, then the
    whole network with differential rates (at 3/4 of `size`, then at `size`: progressive resizing,
    when `size` is given). TTA: every view `symmetry` allows on a GPU, two at most on a CPU.
    `random_crop`: see Recipe. AUTO sizes and their epochs come from the images (vision/sizing.py),
    the cpu recipe's within `minutes` of a 2-core CPU."""
    from pipeline.vision.transforms import SYMMETRIES
    views = SYMMETRIES[symmetry]
    head, tune = (AUTO, AUTO) if cpu_size == AUTO else (2, 2)
    cpu = Recipe(train_folds=AUTO if cpu_size == AUTO else (0,), tta=min(2, views), random_crop=random_crop,
                 budget=minutes if cpu_size == AUTO else None, phases=(
                     Phase(size=cpu_size, epochs=head, lr=1e-2, frozen=("early", "late"), precompute=True),
                     Phase(size=cpu_size, epochs=tune, lr=differential(2e-3), frozen=("early",)),
                 ))
    if size == AUTO:
        gpu = (Phase(size=AUTO, epochs=AUTO, lr=1e-2, frozen=("early", "late"), precompute=True),
               Phase(size=AUTO, epochs=AUTO, lr=differential(2e-3)))
    else:
        small = max(32, round(size * 3 / 4 / 32) * 32)
        gpu = (Phase(size=small, epochs=2, lr=1e-2, frozen=("early", "late"), precompute=True),
               Phase(size=small, epochs=4, lr=differential(2e-3)),
               Phase(size=size, epochs=4, lr=differential(1e-3)))
    return {"cpu": cpu, "gpu": Recipe(batch_size=64, tta=views, random_crop=random_crop, phases=gpu)}
