"""A recipe's phases are the phases that train: the SWA and mining rounds are phases built by
helpers, and the command line's --swa / --hard-negatives replace them; one list of settings
drives both the command line and Recipe.with_overrides."""
import argparse
from dataclasses import replace
from types import SimpleNamespace

import pytest

from pipeline import PipelineError
from pipeline.cli import parser
from pipeline.competition import load
from pipeline.recipe import SETTINGS, Phase, Recipe, differential, mining_round, swa_round
from pipeline.search import apply
from pipeline.stages.context import resolve_recipe, start
from pipeline.stages.engine import settings
from pipeline.stages.train import train_key

from conftest import shrink

LAST = Phase(size=64, epochs=3, lr=differential(1e-3), frozen=("early",), schedule="sgdr", cycle_len=1, cycle_mult=2)
RECIPE = Recipe(phases=(Phase(size=64, epochs=2, lr=1e-2, frozen=("early", "late"), precompute=True), LAST))


@pytest.mark.quick
def test_rounds_continue_the_last_phase_at_half_its_rates():
    swa = swa_round(LAST, epochs=4, schedule="constant")
    assert (swa.size, swa.frozen, swa.epochs, swa.schedule, swa.swa) == (64, ("early",), 4, "constant", True)
    assert swa.lr == pytest.approx(tuple(r / 2 for r in LAST.lr)) and (swa.cycle_len, swa.cycle_mult) == (1, 1)
    mine = mining_round(replace(LAST, lr=1e-3), fraction=0.1, repeat=3, epochs=2)
    assert (mine.mine, mine.mine_repeat, mine.epochs, mine.schedule, mine.lr) == (0.1, 3, 2, "1cycle", 5e-4)
    with pytest.raises(PipelineError, match="in \\(0, 1\\)"):
        mining_round(LAST, fraction=1.5)
    with pytest.raises(PipelineError, match="'sgdr' or 'constant'"):
        swa_round(LAST, epochs=2, schedule="cosine")


@pytest.mark.quick
def test_the_command_line_switches_replace_the_rounds_in_the_recipes_phases():
    both = RECIPE.with_overrides(swa=3, hard_negatives=0.2)
    assert both.phases == RECIPE.phases + (mining_round(LAST, fraction=0.2), swa_round(LAST, epochs=3))
    assert both.averages_weights and not RECIPE.averages_weights
    # given again, they replace the rounds rather than stacking them; 0 takes them out
    assert both.with_overrides(swa=2).phases == RECIPE.phases + (mining_round(LAST, fraction=0.2),
                                                                 swa_round(LAST, epochs=2))
    assert both.with_overrides(hard_negatives=0.1).phases[2] == mining_round(LAST, fraction=0.1)  # still before SWA
    assert both.with_overrides(swa=0, hard_negatives=0).phases == RECIPE.phases
    assert RECIPE.with_overrides(swa=2, swa_schedule="constant").phases[-1].schedule == "constant"
    with pytest.raises(PipelineError, match="--swa EPOCHS"):
        RECIPE.with_overrides(swa_schedule="constant")


@pytest.mark.quick
def test_every_setting_is_a_flag_and_reaches_the_recipe():
    argv = ["run", "x", "--arch", "resnet18", "--weights", "none", "--folds", "4", "--train-folds", "all",
            "--tta", "8", "--batch-size", "16", "--checkpoint", "best", "--seed", "3", "--oversample", "0.5",
            "--random-crop", "0.6", "--snapshots", "2", "--swa", "2", "--swa-schedule", "constant",
            "--hard-negatives", "0.1", "--batchnorm", "frozen", "--mixup", "0.2", "--cutmix", "1.0", "--ema", "0.99",
            "--split", "time"]
    args = parser().parse_args(argv)
    recipe = replace(RECIPE, train_folds=(0,)).with_overrides(**{s.name: getattr(args, s.name) for s in SETTINGS})
    assert (recipe.arch, recipe.weights, recipe.folds, recipe.train_folds, recipe.tta, recipe.batch_size) == \
        ("resnet18", "none", 4, None, 8, 16)
    assert (recipe.checkpoint, recipe.seed, recipe.oversample, recipe.snapshots) == ("best", 3, 0.5, 2)
    assert recipe.random_crop == 0.6 and recipe.batchnorm == "frozen"
    assert (recipe.mixup, recipe.cutmix, recipe.ema, recipe.split) == (0.2, 1.0, 0.99, "time")
    assert [(p.swa, p.mine, p.schedule) for p in recipe.phases[2:]] == [(False, 0.1, "1cycle"), (True, 0.0, "constant")]
    assert len(SETTINGS) == len(argv[2:]) // 2  # every setting was given above
    unset = parser().parse_args(["run", "x"])
    assert RECIPE.with_overrides(**{s.name: getattr(unset, s.name) for s in SETTINGS}) == RECIPE
    with pytest.raises(PipelineError, match="no recipe setting 'swa_epochs'"):
        RECIPE.with_overrides(swa_epochs=2)


@pytest.mark.quick
def test_a_recipe_of_only_averaging_phases_takes_the_other_overrides():
    only = Recipe(phases=(Phase(size=32, epochs=3, lr=1e-3, schedule="constant", swa=True),))
    assert only.with_overrides(tta=4, swa=None).tta == 4
    with pytest.raises(PipelineError, match="has none"):
        only.with_overrides(hard_negatives=0.1)


def resolved(*argv: str):
    """plant-seedlings' gpu recipe (three phases) as `pipeline run` resolves it from these flags."""
    args = parser().parse_args(["run", "plant-seedlings", *argv])
    return resolve_recipe(load("plant-seedlings"), "gpu", True, {s.name: getattr(args, s.name) for s in SETTINGS},
                          args.assignments)[0]


@pytest.mark.quick
def test_set_changes_a_phase_or_a_recipe_setting_by_the_names_a_search_uses():
    base = resolved()
    recipe = resolved("--set", "phase3.epochs=3", "--set", "phase1.lr=3e-3", "--set", "weight_decay=0.1",
                      "--set", "phase2.lr=1e-4,3e-4,1e-3", "--set", "phase3.ratio=2", "--set", "oversample=0.5")
    assert recipe == apply(base, {"phase3.epochs": 3, "phase1.lr": 3e-3, "weight_decay": 0.1,
                                  "phase2.lr": (1e-4, 3e-4, 1e-3), "phase3.ratio": 2.0, "oversample": 0.5})
    assert recipe.phases[2].epochs == 3 and recipe.phases[0].lr == 3e-3 and recipe.weight_decay == 0.1
    assert recipe.phases[1].lr == (1e-4, 3e-4, 1e-3) and recipe.phases[2].lr == differential(1e-3, ratio=2)
    assert resolved("--swa", "2", "--set", "phase4.epochs=3").phases[3].epochs == 3  # the round --swa added
    comp = load("plant-seedlings")
    key = lambda r: train_key(SimpleNamespace(recipe=r, comp=comp, keys={"folds": "f"}), 0)  # noqa: E731
    assert key(resolved("--set", "phase3.epochs=3")) != key(base) == key(resolved("--set", "phase3.epochs=6"))


@pytest.mark.quick
@pytest.mark.parametrize("argv, said", [
    (["--set", "phase4.epochs=3"], "--set phase4.epochs=3: the recipe has phases 1 to 3; use phaseN.{lr,ratio,"
                                   "epochs,size} (N from 1 to 3, e.g. phase3.lr) or one of arch, batch_size, weight_decay"),
    (["--set", "learning_rate=1e-3"], "--set learning_rate=1e-3: no recipe setting of that name; use phaseN."),
    (["--set", "phase1.momentum=0.9"], "a phase's settings to set are lr, ratio, epochs, size"),
    (["--set", "phase1.epochs"], "--set phase1.epochs: give NAME=VALUE, e.g. --set phase1.lr=3e-3"),
    (["--set", "phase1.epochs=two"], "--set phase1.epochs=two: a whole number"),
    (["--set", "phase1.lr=fast"], "--set phase1.lr=fast: a number, one per layer group"),
    (["--set", "oversample=maxx"], "--set oversample=maxx: 'maxx': none, max (up to the largest class) or a power"),
    (["--set", "tta=3"], "--set tta=3: use one of 1, 2, 4, 8"),
    (["--set", "folds=3"], "--set folds=3: set it with --folds 3"),
    (["--set", "seed=1", "--set", "seed=2"], "--set seed=2: seed is set twice"),
    (["--tta", "4", "--set", "tta=2"], "--tta and --set tta: give the setting once"),
    (["--set", "phase1.ratio=2", "--set", "phase1.lr=1e-4,1e-3,1e-2"], "set phase1.lr to one number"),
    (["--set", "phase1.epochs=0"], "phase 1: epochs=0; a whole number >= 1"),  # the recipe's own checks
    (["--set", "phase2.lr=1e-3,1e-2"], "2 learning rates for 3 layer groups"),
])
def test_a_set_the_recipe_cannot_take_is_one_line_naming_it(argv, said):
    with pytest.raises(PipelineError) as e:
        resolved(*argv)
    assert said in str(e.value) and "\n" not in str(e.value)


@pytest.mark.quick
def test_a_tables_phases_have_no_size_to_set():
    comp = load("rossmann-store-sales")
    with pytest.raises(PipelineError, match=r"phase 1 has no size to set .* set its lr or epochs"):
        resolve_recipe(comp, "cpu", False, {}, ["phase1.size=64"])
    with pytest.raises(PipelineError, match=r"use phaseN\.\{lr,ratio,epochs\} \(N from 1 to 1"):
        resolve_recipe(comp, "cpu", False, {}, ["phase2.lr=1e-3"])


@pytest.mark.quick
@pytest.mark.parametrize("argv, said", [
    (["--oversample", "maxx"], "argument --oversample: 'maxx': none, max (up to the largest class) or a power in [0, 1]"),
    (["--oversample", "2"], "argument --oversample: '2': none, max"),
    (["--train-folds", "0,x"], "argument --train-folds: '0,x': 'all' or fold numbers, e.g. 0 or 0,1"),
    (["--train-fold", "0"], "unrecognized arguments: --train-fold 0"),  # no abbreviations
    (["--epochs", "3"], "unrecognized arguments: --epochs 3"),
])
def test_a_flag_the_parser_refuses_is_named_with_what_it_takes(argv, said, capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["run", "x", *argv])
    assert said in capsys.readouterr().err


@pytest.mark.quick
def test_no_command_takes_an_abbreviated_flag(capsys):
    ap = parser()
    commands = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert not ap.allow_abbrev and not any(p.allow_abbrev for p in commands.values())
    for argv in (["check", "x", "--image", "4"], ["tune", "x", "--trial", "3"], ["report", "--comp", "a", "b"]):
        with pytest.raises(SystemExit):
            ap.parse_args(argv)
        assert "unrecognized arguments" in capsys.readouterr().err


@pytest.mark.quick
def test_set_is_in_the_runs_recipe_and_its_settings_json(workdir, plant_data):
    recipe = shrink(load("plant-seedlings").recipes["cpu"])
    r = start("plant-seedlings", data=str(plant_data), recipe=recipe, log=lambda *a: None,
              assignments=["phase2.epochs=2", "weight_decay=0.1"])
    phases = list(recipe.phases)
    phases[1] = replace(phases[1], epochs=2)
    assert r.recipe == replace(recipe, weight_decay=0.1, phases=tuple(phases))
    written = settings(r)["recipe"]
    assert written["phases"][1]["epochs"] == 2 and written["weight_decay"] == 0.1
