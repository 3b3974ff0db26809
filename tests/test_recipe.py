"""A recipe's phases are the phases that train: the SWA and mining rounds are phases built by
helpers, and the command line's --swa / --hard-negatives replace them; one list of settings
drives both the command line and Recipe.with_overrides."""
import argparse
from dataclasses import replace

import pytest

from pipeline import PipelineError
from pipeline.cli import parser
from pipeline.recipe import SETTINGS, Phase, Recipe, differential, mining_round, swa_round

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


@pytest.mark.quick
@pytest.mark.parametrize("argv, said", [
    (["--oversample", "maxx"], "argument --oversample: 'maxx': none, max (up to the largest class) or a power in [0, 1]"),
    (["--oversample", "2"], "argument --oversample: '2': none, max"),
    (["--train-folds", "0,x"], "argument --train-folds: '0,x': 'all' or fold numbers, e.g. 0 or 0,1"),
    (["--train-fold", "0"], "unrecognized arguments: --train-fold 0"),  # no abbreviations
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
