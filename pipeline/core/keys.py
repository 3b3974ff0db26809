"""What each setting changes, and the stage keys built from it.

Every field of a Recipe, a Phase and a Competition says which stages' results it changes
(`affects("train")`, `affects("predict")`, `affects()` for none): the stage keys are made from
those declarations (`settings_for`), never from a list kept by hand, so a new setting cannot be
forgotten by a key, and a field that says nothing fails a test (tests/test_keys.py) and the first
key built from it. A setting enters a key by name, and only while it differs from its default:
adding a setting changes no key made before it, so finished folds stay finished."""
from __future__ import annotations

import dataclasses
from typing import Any

STAGES = ("data", "folds", "train", "predict", "thresholds", "submit")


def affects(*stages: str, default: Any = dataclasses.MISSING) -> Any:
    """A dataclass field that changes the results of `stages` (none: a setting such as which
    folds to train, or a name, that changes no stage's result by itself)."""
    unknown = [s for s in stages if s not in STAGES]
    assert not unknown, f"unknown stage {unknown}; stages: {STAGES}"
    return dataclasses.field(default=default, metadata={"affects": stages})


def unsaid(cls) -> list[str]:
    """The fields of a dataclass that don't say what they affect."""
    return [f.name for f in dataclasses.fields(cls) if "affects" not in f.metadata]


def settings_for(obj: Any, stage: str) -> dict[str, Any]:
    """The settings of `obj` (a Recipe, Phase or Competition) that enter `stage`'s key, by name:
    each one that affects the stage and differs from its default (or has none). A Phase inside
    a setting enters as its own settings for the stage."""
    missing = unsaid(type(obj))
    if missing:
        raise TypeError(f"{type(obj).__name__}.{missing[0]} says nothing of what it affects: "
                        f"declare it with keys.affects(...)")
    out = {}
    for f in dataclasses.fields(obj):
        if stage not in f.metadata["affects"]:
            continue
        value = getattr(obj, f.name)
        if f.default is not dataclasses.MISSING and value == f.default:
            continue
        out[f.name] = _keyed(value, stage)
    return out


def _keyed(value: Any, stage: str) -> Any:
    if hasattr(value, "key"):  # an object that says what of it a key holds (a Metric: not its function)
        return value.key
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # a Phase as its own settings for the stage; a plain record (a Submission) whole
        return settings_for(value, stage) if not unsaid(type(value)) else dataclasses.asdict(value)
    if isinstance(value, (tuple, list)):
        return [_keyed(v, stage) for v in value]
    return value
