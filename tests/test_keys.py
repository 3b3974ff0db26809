"""Stage keys are made from what each setting says it affects (keys.py): none can be forgotten."""
from dataclasses import dataclass, fields, replace
from types import SimpleNamespace

import pytest

from pipeline.competition import Competition, load
from pipeline.core.keys import affects, settings_for, unsaid
from pipeline.recipe import Phase, Recipe, Trees
from pipeline.stages.train import train_key

pytestmark = pytest.mark.quick

# a value other than the default for every recipe setting
OTHER = dict(arch="test_resnet", weights="none", batch_size=7, weight_decay=0.5, label_smoothing=0.1, random_crop=0.5,
             oversample="max", batchnorm="frozen", folds=4, train_folds=(1,), tta=8, checkpoint="best", snapshots=2,
             mixup=0.2, cutmix=1.0, ema=0.99, seed=5, split="time", phases=(Phase(size=64, epochs=1, lr=1e-3),),
             trees=Trees(leaves=31), budget=5.0)


def test_every_setting_says_what_it_affects():
    assert unsaid(Recipe) == [] and unsaid(Phase) == [] and unsaid(Competition) == []
    assert set(OTHER) == {f.name for f in fields(Recipe)}  # (this test names every recipe setting)


def test_a_field_that_says_nothing_fails_the_first_key_built_from_it():
    @dataclass(frozen=True)
    class Forgetful(Recipe):
        clip_grad: float = 1.0

    with pytest.raises(TypeError, match="Forgetful.clip_grad says nothing of what it affects"):
        settings_for(Forgetful(phases=()), "train")


def key(recipe: Recipe, comp: Competition) -> str:
    return train_key(SimpleNamespace(recipe=recipe, comp=comp, keys={"folds": "f"}), 0)


def test_each_setting_changes_the_keys_of_the_stages_it_affects_and_no_other():
    comp = load("digits")
    base = comp.recipes["cpu"]
    for f in fields(Recipe):
        changed = replace(base, **{f.name: OTHER[f.name]})
        stages = f.metadata["affects"]
        assert (key(changed, comp) != key(base, comp)) == ("train" in stages), f.name
        for stage in ("folds", "predict"):
            assert (settings_for(changed, stage) != settings_for(base, stage)) == (stage in stages), (f.name, stage)
    phase = base.phases[0]
    for f in fields(Phase):
        value = {"size": 99, "epochs": 9, "lr": 0.5, "frozen": ("early",), "schedule": "sgdr", "cycle_len": 3,
                 "cycle_mult": 2, "precompute": True, "swa": True, "mine": 0.1, "mine_repeat": 5}[f.name]
        changed = replace(base, phases=(replace(phase, **{f.name: value}), *base.phases[1:]))
        assert key(changed, comp) != key(base, comp), f.name
    assert key(base, replace(comp, symmetry="dihedral")) != key(base, comp)
    assert key(base, replace(comp, classes=comp.classes[:-1])) != key(base, comp)
    assert key(base, replace(comp, target_range=(0.0, 9.0))) != key(base, comp)
    assert key(base, replace(comp, references={"gold": 1.0}, slug="other")) == key(base, comp)


def test_a_setting_added_at_its_default_changes_no_key_made_before_it():
    @dataclass(frozen=True)
    class Newer(Recipe):
        clip_grad: float = affects("train", default=0.0)

    comp = load("digits")
    base = comp.recipes["cpu"]
    newer = Newer(**{f.name: getattr(base, f.name) for f in fields(Recipe)})
    assert key(newer, comp) == key(base, comp)  # finished folds stay finished
    assert key(replace(newer, clip_grad=1.0), comp) != key(base, comp)  # and set, it counts


def test_a_metric_enters_a_key_by_what_it_decides_not_its_function():
    comp = load("digits")
    assert settings_for(comp, "thresholds") == {"metric": (comp.metric.name, comp.metric.higher_is_better, None)}
