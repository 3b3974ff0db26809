"""`pipeline tune COMPETITION`: hyperparameter search on Optuna over the competition's `search`
space (search.py). Each trial is an ordinary run of the recipe with the trial's values: its own
run folder (<study>-<number>) and registry row, so `pipeline report` ranks trials like any runs.

- Samplers: "tpe" (Bayesian: the next trial from the results so far), "random", "grid".
- Pruning: each trial reports its validation score after every epoch; the default median rule
  stops a trial worse than the median of earlier trials at the same epoch, once the trial is
  half way through its epochs and three trials have finished. A study of a few dozen trials
  of a staged recipe suits it: Hyperband's first rungs judge after an epoch or two, where a
  head trained on frozen features ranks trials badly, and its brackets pay over hundreds of
  trials. `--pruner hyperband` or `none` choose otherwise.
- Folds: a trial trains fold 0 by default (under a time split the last fold, the competition's
  own: fold 0 is the earliest block, trained on the least history), `--folds 0,1` (scored
  out-of-fold over both: one fold's noise is the size of most gains) or `all`.
- The study lives in a journal file under data/tune/<competition>/ (several processes on one
  machine share it) or `--storage URL` (an RDB, for several machines). Stopping and starting
  `pipeline tune` again continues the same study. A trial left running by a killed process
  on this machine is marked failed and its values queued again (twice at most), and the retry
  resumes the killed run from its last finished epoch.
- `--trials N` bounds the trials asked for, by every process together, failed ones included (a
  killed trial queued again counts once). What every trial shares (the data, the device, the
  recipe's model, the run names) is checked before the first is asked for, and three trials
  failing in a row stop the study with the error's line: no error loops."""
from __future__ import annotations

from argparse import ArgumentTypeError

import os
import re
import socket
import time
from pathlib import Path
from typing import Callable

from pipeline import PipelineError, Pruned
from pipeline.competition import Competition, load
from pipeline.core.files import locked
from pipeline.core.workdir import Workdir, checked_name
from pipeline.recipe import Recipe, _folds, fold_problem
from pipeline.search import apply, check, for_recipe, grid, source, suggest

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "none")
RETRIES = 2  # a killed trial's values queued again at most this often: one that kills its process each time must not loop
NOT_QUEUED = (f"its values were queued again {RETRIES} times already and are not again (a trial that ends "
              f"its process each time?): it counts as failed")
IN_A_ROW = 3  # trials of one process failing in a row that stop the study: an error that is not the trial's values


def _optuna():
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own lines say what happens
    return optuna


def storage_for(workdir: Workdir, comp: Competition, study: str, url: str | None):
    """The study's storage: an RDB at `url`, or a journal file in the work folder."""
    optuna = _optuna()
    if url:
        try:
            storage = optuna.storages.RDBStorage(url)
            storage.get_all_studies()  # reach it now, not after a trial has trained
            return storage
        except Exception as e:  # (drivers and servers fail in many ways; each is one line here)
            said = masked(str(e).splitlines()[0] if str(e) else type(e).__name__)[:200]
            raise PipelineError(f"--storage {masked(url)}: cannot open it ({said}); check the URL, the server "
                                f"and its driver, or leave --storage out for a local journal file") from None
    path = journal(workdir, comp, study)
    path.parent.mkdir(parents=True, exist_ok=True)
    from optuna.storages.journal import JournalFileBackend
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def masked(text: str) -> str:
    """`text` with the password of any URL in it (scheme://user:PASSWORD@host) shown as ***: a
    storage URL goes into error messages, and those into logs and issue reports."""
    return re.sub(r"(\b[A-Za-z][\w+.-]*://[^\s:/@]*:)\S*@", r"\1***@", text)


def study_name(name: str) -> str:
    """--study: it names the study's journal file and its trials' runs, <study>-<number>, which
    must fit a run name's 100 characters: a trial whose run name is refused fails, and the next too."""
    return checked_name(name, "study name", "--study lr-search", longest=90)


def journal(workdir: Workdir, comp: Competition, study: str) -> Path:
    return workdir.tune(comp.name) / f"{study_name(study)}.journal"


def base_recipe(comp: Competition, name: str | None, device: str) -> tuple[str, Recipe]:
    from pipeline.core.device import Device
    name = name or ("gpu" if Device.pick(device).device.type == "cuda" else "cpu")
    if name not in comp.recipes:
        raise PipelineError(f"{comp.folder}/competition.py: no recipe {name!r} (has {', '.join(comp.recipes)})")
    return name, comp.recipes[name]


def make_sampler(kind: str, space: dict, trials: int, seed: int | None = None):
    """Unseeded by default: two processes on one study must not propose the same trials."""
    optuna = _optuna()
    if kind == "grid":
        return optuna.samplers.GridSampler(grid(space), seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(n_startup_trials=max(2, min(10, trials // 3)), multivariate=True, seed=seed)


def make_pruner(kind, epochs: int):
    optuna = _optuna()
    if not isinstance(kind, str):
        return kind  # a pruner object (tests, the Python API)
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=epochs // 2) if epochs \
            else optuna.pruners.NopPruner()  # (trees: no epochs to report, each trial stops early itself)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs)
    return optuna.pruners.NopPruner()


def tune(comp_name: str, *, study: str = "study", trials: int | None = None, sampler: str = "tpe",
         timeout: float | None = None, folds: str | None = None, storage: str | None = None, pruner="median",
         recipe: str | None = None, data: str | None = None, device: str = "auto", seed: int | None = None,
         workdir: Workdir | None = None, log: Callable = print) -> str:
    """Run trials until the study has asked for `trials` (all processes together, failed ones
    included) or `timeout` seconds pass. Returns the summary of --show."""
    optuna = _optuna()
    workdir = workdir or Workdir.default()
    comp = load(comp_name)
    study_name(study)  # before the study is created in any storage
    if sampler not in SAMPLERS:
        raise PipelineError(f"--sampler {sampler}: use one of {', '.join(SAMPLERS)}")
    recipe_name, base = base_recipe(comp, recipe, device)
    train_folds = _trial_folds(folds, base)
    space = for_recipe(comp.search or {}, base)
    check(space, base, f"{comp.folder}/competition.py")
    if trials is None:
        trials = len(_grid_points(space)) if sampler == "grid" else 20
    found, first = _shared(comp, base, study, workdir=workdir, data=data, device=device, train_folds=train_folds,
                           log=log)
    data, epochs = str(found), sum(p.epochs for p in first.phases)  # (a starter's epochs sized to the data)
    st = optuna.create_study(storage=storage_for(workdir, comp, study, storage), study_name=study, load_if_exists=True,
                             direction="maximize" if comp.metric.higher_is_better else "minimize",
                             sampler=make_sampler(sampler, space, trials, seed), pruner=make_pruner(pruner, epochs))
    st.set_user_attr("recipe", recipe_name)
    t0, lock = time.time(), journal(workdir, comp, study).with_suffix(".lock")
    ran, failed = 0, []  # this process's trials, and those of them failing in a row with their errors
    while timeout is None or time.time() - t0 < timeout:
        with locked(lock):  # count and ask as one step: no process starts trial N + 1
            _fail_stale(st, log)
            if _asked(st.get_trials(deepcopy=False)) >= trials:
                break
            trial = st.ask()
            run = trial.user_attrs.get("resume_run") or f"{study}-{trial.number}"
            for key, value in (("host", socket.gethostname()), ("pid", os.getpid()), ("run", run)):
                trial.set_user_attr(key, value)
        params = suggest(trial, space)
        log(f"trial {trial.number} ({run}): {params}")
        ran += 1
        try:
            value = run_trial(comp_name, apply(base, params), trial, run, workdir=workdir, data=data, device=device,
                              train_folds=train_folds, log=log)
        except Pruned as e:
            _tell(st, trial, state=optuna.trial.TrialState.PRUNED)
            log(f"trial {trial.number}: pruned ({e})")
            failed = []
        except PipelineError as e:  # settings that cannot run (an SGDR phase the epochs don't fill...)
            _tell(st, trial, state=optuna.trial.TrialState.FAIL)
            log(f"trial {trial.number}: failed: {e}")
            failed.append((trial.number, str(e).splitlines()[0] if str(e) else type(e).__name__))
            if len(failed) >= IN_A_ROW:
                raise PipelineError(_stopped(study, failed)) from None
        except BaseException:  # Ctrl-C, SIGTERM: the trial goes back in the queue; its run resumes
            if not _retry(st, trial.number, params, trial.user_attrs):
                log(f"trial {trial.number}: {NOT_QUEUED}")
            raise
        else:
            _tell(st, trial, value)
            log(f"trial {trial.number}: {comp.metric.name} {value:.4f}")
            failed = []
    if failed and len(failed) == ran:  # nothing this process asked for ran: say why, as an error
        raise PipelineError(_stopped(study, failed))
    return show(comp_name, study=study, storage=storage, workdir=workdir)


def _shared(comp: Competition, base: Recipe, study: str, *, workdir: Workdir, data: str | None, device: str,
            train_folds, log: Callable) -> tuple[Path, Recipe]:
    """What every trial shares, checked once before the first is asked for, as `pipeline run`
    checks it: the run names, the device, the data (found or fetched), its layout and sample
    file, the recipe's model. An error here would fail every trial the same way: it is one line
    now, not a study of failed trials. Returns the data folder the trials read, and the recipe
    as the data sizes it (vision/sizing.py)."""
    from pipeline.stages.context import find_or_fetch, start
    found = find_or_fetch(comp, data, workdir, log)  # (its download said once, not a trial's)
    r = start(comp.name, workdir=workdir, data=str(found), run=f"{study}-0", recipe=base, device=device,
          log=lambda *parts: None, train_folds=train_folds)  # (each trial says the data's notices)
    return found, r.recipe


def run_trial(comp_name: str, recipe: Recipe, trial, run: str, *, workdir: Workdir, data: str, device: str,
              train_folds, log: Callable) -> float:
    """One trial: an ordinary run of `recipe`, its score after each epoch told to the pruner."""
    from pipeline.stages.run import run_all, start_run
    r = start_run(comp_name, workdir=workdir, data=data, run=run, recipe=recipe, device=device, log=log,
                  train_folds=train_folds)
    r.on_epoch = _reporter(trial)
    return run_all(r)["oof"]


def _asked(trials: list) -> int:
    """The trials `--trials` counts: every one asked for, failed ones included, but a killed one
    once: its values queued again (WAITING until asked) stand for it."""
    requeued = {t.user_attrs.get("retry_of") for t in trials}
    return sum(t.state.name != "WAITING" and t.number not in requeued for t in trials)


def _stopped(study: str, failed: list[tuple[int, str]]) -> str:
    """The last error, and that the study stops on it (failed trials count toward --trials)."""
    numbers = ", ".join(str(n) for n, _ in failed)
    return (f"{failed[-1][1]} (trial{'s' if len(failed) > 1 else ''} {numbers} of study {study!r} failed"
            f"{' in a row' if len(failed) > 1 else ''}: the study stops; failed trials count toward --trials)")


def _trial_folds(folds: str | None, base: Recipe) -> tuple[int, ...] | str:
    """--folds, read as `pipeline run --train-folds` reads it: "all", or the folds every trial
    trains (e.g. "0,1"), each one of the recipe's and named once. None: fold 0, or under a time
    split the last (the period just before the test's, trained on all the history before it)."""
    if folds is None:
        return (base.folds - 1,) if base.split == "time" else (0,)
    try:
        chosen = _folds(folds)
    except ArgumentTypeError:  # (the command line's own parser says it so)
        chosen = ()
    if chosen != "all" and (not chosen or fold_problem(chosen, base.folds)):
        raise PipelineError(f"--folds {folds}: 0 (the first fold, fast), a list of the recipe's folds "
                            f"0..{base.folds - 1} such as 0,1, or all")
    return chosen


def _tell(st, trial, value=None, state=None) -> None:
    """study.tell; a grid sampler's "grid done" (study.stop(), meant for study.optimize) comes
    after the trial is recorded and is no error here: the count ends the loop."""
    try:
        st.tell(trial, value, state=state)
    except RuntimeError as e:
        if "Study.stop" not in str(e):
            raise


def _grid_points(space: dict) -> list:
    import itertools
    return list(itertools.product(*grid(space).values()))


def _reporter(trial) -> Callable[[int, float], None]:
    """What the trainer calls after each epoch: report the score, stop if the pruner says so.
    With several folds a trial, the epochs of its first fold are the steps the pruner compares
    (the later folds' repeat those steps, which Optuna would not record anyway)."""
    reported = set()

    def report(step: int, score: float) -> None:
        if step in reported:
            return
        reported.add(step)
        trial.report(score, step)
        if trial.should_prune():
            raise Pruned(f"epoch {step + 1}: {score:.4f}")
    return report


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fail_stale(st, log: Callable) -> None:
    """Trials left running by a process of this machine that is gone: failed, and queued again."""
    for t in st.get_trials(deepcopy=False, states=(_optuna().trial.TrialState.RUNNING,)):
        if t.user_attrs.get("host") == socket.gethostname() and not _alive(t.user_attrs.get("pid", 0)):
            if _retry(st, t.number, t.params, t.user_attrs):
                log(f"trial {t.number} was left running by a process that died: marked failed, its values "
                    f"queued again (its run {t.user_attrs.get('run')} resumes)")
            else:
                log(f"trial {t.number} was left running by a process that died: marked failed; {NOT_QUEUED}")


def _retry(st, number: int, params: dict, attrs: dict) -> bool:
    """Mark the trial failed and queue its values again (`retry_of` names it: the retry counts in
    its place), unless they were queued RETRIES times already. Whether they were queued."""
    optuna = _optuna()
    _tell(st, number, state=optuna.trial.TrialState.FAIL)
    retries = attrs.get("retries", 0)
    if retries >= RETRIES:
        return False
    again = {"retry_of": number, "retries": retries + 1} | ({"resume_run": attrs["run"]} if attrs.get("run") else {})
    st.enqueue_trial(params, user_attrs=again, skip_if_exists=False)
    return True


def trial_settings(comp: Competition, spec: str, storage: str | None, workdir: Workdir) -> tuple[Recipe, str]:
    """`--trial STUDY:NUMBER`: the recipe that trial ran, and its run name."""
    study, _, number = spec.rpartition(":")
    if not study or not number.isdigit():
        raise PipelineError(f"--trial {spec}: give STUDY:NUMBER, e.g. study:12 (`pipeline tune {comp.name} --show`)")
    st = _load(comp, study, storage, workdir)
    found = [t for t in st.get_trials(deepcopy=False) if t.number == int(number)]
    if not found:
        raise PipelineError(f"--trial {spec}: study {study!r} has trials 0 to {len(st.trials) - 1}")
    base = comp.recipes[st.user_attrs.get("recipe", "cpu")]
    return apply(base, found[0].params), f"{study}-{number}"


def _load(comp: Competition, study: str, storage: str | None, workdir: Workdir):
    optuna = _optuna()
    study_name(study)
    if storage is None and not journal(workdir, comp, study).exists():
        raise PipelineError(f"no study {study!r} for {comp.name} ({journal(workdir, comp, study)} does not exist); "
                            f"`pipeline tune {comp.name} --study {study}` starts one")
    try:
        return optuna.load_study(study_name=study, storage=storage_for(workdir, comp, study, storage))
    except KeyError:
        raise PipelineError(f"no study {study!r} in {masked(storage)}") from None


def show(comp_name: str, *, study: str = "study", storage: str | None = None, workdir: Workdir | None = None,
         top: int = 10) -> str:
    """The best trials as a table, the best values as a recipe to paste, and the plots' page."""
    workdir = workdir or Workdir.default()
    comp = load(comp_name)
    st = _load(comp, study, storage, workdir)
    done = [t for t in st.trials if t.state.name == "COMPLETE"]
    states = {}
    for t in st.trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    lines = [f"study {study} of {comp.name}: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items()))]
    if not done:
        return "\n".join(lines + ["no finished trial yet"])
    ranked = sorted(done, key=lambda t: t.value, reverse=comp.metric.higher_is_better)[:top]
    # minutes: the trial's wall time, what a recipe's time budget is about (resumed trials count
    # only their last process)
    lines.append(f"{'trial':>6} {comp.metric.name:>10} {'minutes':>7}  values")
    lines += [f"{t.number:>6} {t.value:>10.4f} {t.duration.total_seconds() / 60:>7.1f}  "
              + ", ".join(f"{k}={_short(v)}" for k, v in t.params.items()) for t in ranked]
    best = ranked[0]
    recipe = apply(comp.recipes[st.user_attrs.get("recipe", "cpu")], best.params)
    lines += [f"best: trial {best.number} (run {best.user_attrs.get('run')}); as a recipe for competition.py "
              f"(`pipeline run {comp.name} --trial {study}:{best.number}` runs it again):", source(recipe)]
    page = plots(st, journal(workdir, comp, study).with_suffix(".html"), f"{comp.name}, study {study}")
    lines.append(f"plots: {page}")
    return "\n".join(lines)


def _short(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def plots(st, path: Path, title: str) -> Path:
    """One HTML page: the optimisation history, the parameters' importances, and a slice per
    parameter, as embedded PNGs (matplotlib; no network)."""
    import base64
    import io
    import warnings
    from optuna.visualization import matplotlib as vis
    from pipeline.core.plots import pyplot
    from pipeline.core.files import atomic_path
    plt = pyplot()
    figures = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
        for name, draw in (("history", vis.plot_optimization_history), ("importances", vis.plot_param_importances),
                           ("slices", vis.plot_slice)):
            try:
                draw(st)
            except (ValueError, RuntimeError):  # importances need two finished trials and a varied parameter
                continue
            buf = io.BytesIO()
            plt.gcf().set_size_inches(10, 4)
            plt.savefig(buf, format="png", dpi=80, bbox_inches="tight")
            plt.close("all")
            figures.append(f"<h2>{name}</h2><img src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'>")
    with atomic_path(path) as tmp:
        tmp.write_text(f"<!doctype html><meta charset=utf-8><title>{title}</title><h1>{title}</h1>" + "".join(figures))
    return path
