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

Phase settings: lr, ratio, epochs, size (images'). Recipe settings: any of Recipe's plain fields
(arch, batch_size, weight_decay, label_smoothing, random_crop, oversample, tta, checkpoint,
snapshots, seed) and the SWA and mining rounds (swa, hard_negatives)."""
from __future__ import annotations

import re
from dataclasses import MISSING, dataclass, fields, replace
from typing import Any

from pipeline import PipelineError
from pipeline.recipe import Phase, Recipe, differential, follow, ordinary


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
RECIPE_KEYS = tuple(f.name for f in fields(Recipe) if f.name not in ("phases", "train_folds", "folds", "weights"))
OVERRIDES = ("swa", "hard_negatives")  # rounds of phases, built as the command line builds them


def check(space: dict, recipe: Recipe, where: str) -> None:
    """Every name one the recipe has, every range non-empty: one line each, before any training."""
    if not space:
        raise PipelineError(f"{where}: the search space is empty; declare `search = {{...}}` (see pipeline/search.py)")
    for name, dist in space.items():
        at = f"{where}: search[{name!r}]"
        phase = _phase_name(name)
        if phase:
            index, key = phase
            if not 1 <= index <= len(recipe.phases):
                raise PipelineError(f"{at}: the recipe has phases 1 to {len(recipe.phases)}")
            if key not in PHASE_KEYS:
                raise PipelineError(f"{at}: a phase's searchable settings are {', '.join(PHASE_KEYS)}")
            if key == "size" and recipe.phases[index - 1].size is None:  # (a table's phases: its rows have no size)
                raise PipelineError(f"{at}: phase {index} has no size to search (a table's rows have none); "
                                    f"search its lr or epochs")
        elif name not in RECIPE_KEYS + OVERRIDES:
            raise PipelineError(f"{at}: no recipe setting of that name; use phaseN.{{{','.join(PHASE_KEYS)}}} "
                                f"or one of {', '.join(RECIPE_KEYS + OVERRIDES)}")
        if isinstance(dist, Choice):
            if not dist.values:
                raise PipelineError(f"{at}: Choice() of nothing; list the values")
        elif isinstance(dist, (Float, Int)):
            if not dist.low < dist.high or (dist.log and dist.low <= 0):
                raise PipelineError(f"{at}: {dist} is empty (low must be below high, and above 0 on a log scale)")
        else:
            raise PipelineError(f"{at}: {dist!r}; use Float(low, high), Int(low, high) or Choice(a, b, ...)")


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
    plain = {k: v for k, v in params.items() if k in RECIPE_KEYS}
    rounds = {k: v for k, v in params.items() if k in OVERRIDES}
    recipe = replace(recipe, **plain).with_overrides(**rounds) if rounds else replace(recipe, **plain)
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


def _phase_name(name: str) -> tuple[int, str] | None:
    """(phase number from 1, setting) of a name such as "phase4.lr"; None for a recipe setting."""
    m = re.fullmatch(r"phase(\d+)\.(\w+)", name)
    return (int(m[1]), m[2]) if m else None


def _phase(p: Phase, values: dict[str, Any]) -> Phase:
    rates = p.lr if isinstance(p.lr, tuple) else None
    head = values.get("lr", rates[-1] if rates else p.lr)
    lr = p.lr  # (a trial that sets only epochs or size keeps the phase's rates, differential ones too)
    if "ratio" in values:
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

