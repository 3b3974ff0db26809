"""A search space, declared beside the recipes in competition.py, and how a trial's values
change a recipe. Names are a recipe's own settings, or a phase's, numbered from 1 as the logs
number them:

    search = {
        "phase1.lr": Float(1e-3, 3e-2, log=True),  # the head's peak rate (other groups keep their ratio)
        "phase3.ratio": Float(2, 5),               # differential rates: each group lr/ratio of the next
        "phase4.epochs": Int(2, 4),
        "label_smoothing": Float(0.0, 0.2),
        "weight_decay": Float(1e-3, 0.1, log=True),
        "tta": Choice(2, 4, 8),
        "arch": Choice("efficientnet_lite0", "resnet18"),
    }

Phase settings: lr, ratio, epochs, size (images'). A trees recipe (arch "lightgbm") has no
phases; its settings are trees.leaves, trees.lr, trees.min_leaf, trees.feature_fraction,
trees.bagging, trees.l2, trees.rounds, trees.patience (recipe.Trees). Recipe settings: any of
Recipe's plain fields (arch, batch_size, weight_decay, label_smoothing, random_crop, oversample, tta, checkpoint,
snapshots, seed) and the SWA and mining rounds (swa, hard_negatives). `pipeline run --set NAME=VALUE`
takes the same names (`assigned` reads its values, `apply` puts them in the recipe)."""
from __future__ import annotations

import re
from argparse import ArgumentTypeError
from dataclasses import MISSING, dataclass, fields, replace
from typing import Any, Sequence

from pipeline import PipelineError
from pipeline.recipe import SETTINGS, Phase, Recipe, Trees, differential, follow, ordinary


@dataclass(frozen=True)
class Float:
    low: float
    high: float
    log: bool = False  # sample the exponent: rates, weight decay


@dataclass(frozen=True)
class Int:
    low: int
    high: int
    step: int = 1
    log: bool = False


class Choice:
    """One of a few values (an architecture, TTA views); a grid search takes each."""

    def __init__(self, *values):
        self.values = tuple(values)

    def __repr__(self) -> str:
        return f"Choice{self.values!r}"


PHASE_KEYS = ("lr", "ratio", "epochs", "size")
RECIPE_KEYS = tuple(f.name for f in fields(Recipe) if f.name not in ("phases", "train_folds", "folds", "weights", "trees"))
TREES_KEYS = tuple(f.name for f in fields(Trees))  # "trees.leaves", ...: a trees recipe's (arch lightgbm)
OVERRIDES = ("swa", "hard_negatives")  # rounds of phases, built as the command line builds them


def for_recipe(space: dict, recipe: Recipe) -> dict:
    """The part of a competition's search space `recipe` is tuned over: a trees recipe's trees.*
    names, a network's every other (one `search` serves both kinds of recipe)."""
    return {k: v for k, v in space.items() if k.startswith("trees.") == recipe.boosted}


def check(space: dict, recipe: Recipe, where: str) -> None:
    """Every name one the recipe has, every range non-empty: one line each, before any training."""
    if not space:
        raise PipelineError(f"{where}: the search space is empty; declare `search = {{...}}` (see pipeline/search.py)")
    for name, dist in space.items():
        at = f"{where}: search[{name!r}]"
        wrong = problem(name, recipe, "search")
        if wrong:
            raise PipelineError(f"{at}: {wrong}")
        if isinstance(dist, Choice):
            if not dist.values:
                raise PipelineError(f"{at}: Choice() of nothing; list the values")
        elif isinstance(dist, (Float, Int)):
            if not dist.low < dist.high or (dist.log and dist.low <= 0):
                raise PipelineError(f"{at}: {dist} is empty (low must be below high, and above 0 on a log scale)")
        else:
            raise PipelineError(f"{at}: {dist!r}; use Float(low, high), Int(low, high) or Choice(a, b, ...)")


def problem(name: str, recipe: Recipe, verb: str) -> str | None:
    """What is wrong with `name` as a setting of `recipe` to `verb` ("search", "set"), or None."""
    phase = _phase_name(name)
    if name.startswith("trees."):
        if not recipe.boosted:
            return f"trees.* are a trees recipe's settings (arch lightgbm); this recipe trains {recipe.arch}"
        if name[6:] not in TREES_KEYS:
            return f"the trees' settings are {', '.join('trees.' + k for k in TREES_KEYS)}"
    elif phase:
        index, key = phase
        if not 1 <= index <= len(recipe.phases):
            return f"the recipe has phases 1 to {len(recipe.phases)}; {names(recipe)}"
        if key not in PHASE_KEYS:
            return f"a phase's settings to {verb} are {', '.join(PHASE_KEYS)}"
        if key == "size" and recipe.phases[index - 1].size is None:  # (a table's phases: its rows have no size)
            return f"phase {index} has no size to {verb} (a table's rows have none); {verb} its lr or epochs"
    elif name not in RECIPE_KEYS + OVERRIDES:
        return f"no recipe setting of that name; {names(recipe)}"
    return None


def names(recipe: Recipe) -> str:
    """The settings a search or --set may name in `recipe`, in words."""
    if recipe.boosted:
        return f"use one of {', '.join('trees.' + k for k in TREES_KEYS)} or {', '.join(RECIPE_KEYS)}"
    keys = [k for k in PHASE_KEYS if k != "size" or any(p.size is not None for p in recipe.phases)]
    n = len(recipe.phases)
    return (f"use phaseN.{{{','.join(keys)}}} (N from 1 to {n}, e.g. phase{n}.{keys[0]}) "
            f"or one of {', '.join(RECIPE_KEYS + OVERRIDES)}")


def suggest(trial, space: dict) -> dict[str, Any]:
    """The trial's value for every name (Optuna picks them, or takes an enqueued trial's)."""
    out = {}
    for name, d in space.items():
        if isinstance(d, Choice):
            out[name] = trial.suggest_categorical(name, list(d.values))
        elif isinstance(d, Int):
            out[name] = trial.suggest_int(name, d.low, d.high, step=d.step, log=d.log)
        else:
            out[name] = trial.suggest_float(name, d.low, d.high, log=d.log)
    return out


def grid(space: dict) -> dict[str, list]:
    """Every value of every name, for a grid search: lists and integer ranges only."""
    out = {}
    for name, d in space.items():
        if isinstance(d, Choice):
            out[name] = list(d.values)
        elif isinstance(d, Int) and not d.log:
            out[name] = list(range(d.low, d.high + 1, d.step))
        else:
            raise PipelineError(f"search[{name!r}]: a grid search takes Choice(...) and Int(...) values, "
                                f"not {d}; use --sampler tpe or random, or list the values with Choice")
    return out


def apply(recipe: Recipe, params: dict[str, Any]) -> Recipe:
    """`recipe` with a trial's values in place."""
    if not params:  # (nothing to place: a recipe of rounds alone has no ordinary phase to follow)
        return recipe
    plain = {k: v for k, v in params.items() if k in RECIPE_KEYS}
    rounds = {k: v for k, v in params.items() if k in OVERRIDES}
    recipe = replace(recipe, **plain).with_overrides(**rounds) if rounds else replace(recipe, **plain)
    grown = {k[6:]: v for k, v in params.items() if k.startswith("trees.")}
    if grown or recipe.boosted:  # (trees have no phases for the rest to change)
        return replace(recipe, trees=replace(recipe.trees, **grown))
    phases = list(recipe.phases)
    for i, p in enumerate(phases):
        mine = {q[1]: v for k, v in params.items() if (q := _phase_name(k)) and q[0] == i + 1}
        if mine:
            phases[i] = _phase(p, mine)
    # the rounds continue the last ordinary phase at half its rates: they follow a change to it
    before, after = ordinary(recipe.phases), ordinary(tuple(phases))
    if after != before:
        phases = [follow(p, before, after) if p.swa or p.mine else p for p in phases]
    return replace(recipe, phases=tuple(phases))


def assigned(recipe: Recipe, texts: Sequence[str]) -> dict[str, Any]:
    """`--set NAME=VALUE`s as the values `apply` takes: each name one a search of `recipe` could
    name, each value read as its setting needs (a whole number, a number, a rate per layer group)."""
    flags = {s.name: s for s in SETTINGS}
    out: dict[str, Any] = {}
    for text in texts:
        name, eq, value = (part.strip() for part in text.partition("="))
        at = f"--set {text}"
        if not eq or not name or not value:
            raise PipelineError(f"{at}: give NAME=VALUE, e.g. --set phase1.lr=3e-3; {names(recipe)}")
        wrong = problem(name, recipe, "set")
        if wrong and name in flags:  # folds, train_folds, weights, swa_schedule: not searched, but flags
            wrong = f"set it with --{name.replace('_', '-')} {value}"
        if wrong:
            raise PipelineError(f"{at}: {wrong}")
        if name in out:
            raise PipelineError(f"{at}: {name} is set twice; set it once")
        phase = _phase_name(name)
        read = PHASE_READERS[phase[1]] if phase else flags[name].parse if name in flags else \
            type(getattr(recipe.trees, name[6:])) if name.startswith("trees.") else \
            type(next(f.default for f in fields(Recipe) if f.name == name))  # (weight_decay, label_smoothing: floats)
        try:
            out[name] = read(value)
        except (ValueError, ArgumentTypeError) as e:
            raise PipelineError(f"{at}: {e if isinstance(e, ArgumentTypeError) else WORDS.get(read, e)}") from None
        choices = flags[name].choices if name in flags else None
        if choices and out[name] not in choices:
            raise PipelineError(f"{at}: use one of {', '.join(map(str, choices))}")
    for index in {p[0] for p in map(_phase_name, out) if p}:
        lr = out.get(f"phase{index}.lr", recipe.phases[index - 1].lr)
        if f"phase{index}.ratio" in out and (lr == "find" or isinstance(out.get(f"phase{index}.lr"), tuple)):
            raise PipelineError(f"--set phase{index}.ratio spreads one peak rate over the layer groups, but "
                                f"phase {index}'s lr is {lr!r}; set phase{index}.lr to one number")
    return out


def _rates(text: str) -> float | tuple[float, ...] | str:
    """A phase's lr: a number, one per layer group (1e-4,3e-4,1e-3), or "find" (lr range test)."""
    return text if text == "find" else tuple(float(t) for t in text.split(",")) if "," in text else float(text)


PHASE_READERS = {"lr": _rates, "ratio": float, "epochs": int, "size": int}
WORDS = {int: "a whole number", float: "a number",
         _rates: "a number, one per layer group (e.g. 1e-4,3e-4,1e-3), or find"}


def _phase_name(name: str) -> tuple[int, str] | None:
    """(phase number from 1, setting) of a name such as "phase4.lr"; None for a recipe setting."""
    m = re.fullmatch(r"phase(\d+)\.(\w+)", name)
    return (int(m[1]), m[2]) if m else None


def _phase(p: Phase, values: dict[str, Any]) -> Phase:
    rates = p.lr if isinstance(p.lr, tuple) else None
    head = values.get("lr", rates[-1] if rates else p.lr)
    lr = p.lr  # (a trial that sets only epochs or size keeps the phase's rates, differential ones too)
    if isinstance(values.get("lr"), (tuple, str)):  # --set phase2.lr=1e-4,3e-4,1e-3 or find: as given
        lr = values["lr"]
    elif "ratio" in values:
        lr = differential(head, len(rates) if rates else 3, values["ratio"])
    elif "lr" in values:
        lr = tuple(r * head / rates[-1] for r in rates) if rates else head  # the body keeps its share
    return replace(p, lr=lr, epochs=values.get("epochs", p.epochs), size=values.get("size", p.size))


def source(recipe: Recipe) -> str:
    """`recipe` as Python to paste into competition.py (settings left at their defaults omitted)."""
    def call(obj, indent: str) -> str:
        parts = []
        for f in fields(obj):
            value = getattr(obj, f.name)
            if f.default is not MISSING and value == f.default:
                continue
            if f.name == "phases":
                inner = "".join(f"\n{indent}        {call(p, indent + '    ')}," for p in value)
                parts.append(f"phases=({inner}\n{indent}    )")
            else:
                parts.append(f"{f.name}={value!r}")
        return f"{type(obj).__name__}({', '.join(parts)})"
    return call(recipe, "")

