"""The command line: `pipeline run|lr-find|check|snapshots <competition>`, `pipeline list|new|report`,
`pipeline blend <competition> RUN RUN ...`, and the Kaggle commands `pipeline download|submit|submissions|kernel <competition>`."""
from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import sys
from functools import partial
from pathlib import Path

from pipeline import PipelineError, stop_on_sigterm
from pipeline.core.workdir import Workdir
from pipeline.recipe import SETTINGS


def _settings(p: argparse.ArgumentParser) -> None:
    """Where the data is, which run, and the recipe settings a command line may override."""
    p.add_argument("--data", help="the competition's data folder (default: $PIPELINE_DATA/<competition>, "
                   "data/<competition>, or a Kaggle kernel's input)")
    p.add_argument("--run", help="run name: its folder is data/runs/<competition>/<run> (default: the recipe's name)")
    p.add_argument("--recipe", help="which of the competition's recipes (default: gpu on CUDA, else cpu)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--compile", action="store_true", help="torch.compile the model: faster steps on a GPU once "
                   "compiled, which takes minutes (benchmarks/RESULTS.md says when it pays)")
    for s in SETTINGS:
        p.add_argument("--" + s.name.replace("_", "-"), type=s.parse, choices=s.choices, metavar=s.metavar,
                       help=s.help)
    p.add_argument("--set", action="append", default=[], dest="assignments", metavar="NAME=VALUE",
                   help="any setting a search may name, again for each: a phase's (numbered from 1, as the logs "
                   "number them) phaseN.lr, .ratio, .epochs or .size, or a recipe's, e.g. --set phase2.epochs=3 "
                   "--set phase1.lr=3e-3 --set weight_decay=0.1; a rate per layer group: phase2.lr=1e-4,3e-4,1e-3")


def parser() -> argparse.ArgumentParser:
    # no abbreviations: --train-fold is a typo to say, not --train-folds to guess (nor, once another
    # flag shares the prefix, a different one)
    ap = argparse.ArgumentParser(prog="pipeline", description=__doc__, allow_abbrev=False)
    sub = ap.add_subparsers(dest="command", required=True)
    command = partial(sub.add_parser, allow_abbrev=False)

    run = command("run", help="folds -> train -> predict -> submit -> scores for a competition")
    run.add_argument("competition")
    _settings(run)
    run.add_argument("--parallel", choices=("data", "folds"),
                     help="under torchrun: train each fold on every rank together (data, the default), or "
                     "give each rank whole folds (folds); launch as torchrun --nproc_per_node N -m pipeline -- run ...")
    run.add_argument("--sync-bn", action="store_true",
                     help="with --parallel data on GPUs: BatchNorm statistics over the whole global batch")
    run.add_argument("--trial", metavar="STUDY:NUMBER", help="run a `pipeline tune` trial's settings again")
    run.add_argument("--storage", help="with --trial: the study's storage URL, if not the local journal")

    tu = command("tune", help="hyperparameter search (Optuna) over the competition's `search` space; "
                        "each trial an ordinary run")
    tu.add_argument("competition")
    tu.add_argument("--study", default="study", help="the study's name: run again to continue it (default study)")
    tu.add_argument("--trials", type=int, help="trials asked for in the study, all processes together, failed "
                    "ones included (default 20; a grid: its size)")
    tu.add_argument("--sampler", choices=("tpe", "random", "grid"), default="tpe",
                    help="tpe (Bayesian, the default), random, or grid (Choice and Int values only)")
    tu.add_argument("--pruner", choices=("median", "hyperband", "none"), default="median",
                    help="stop unpromising trials early (default median, after half the epochs)")
    tu.add_argument("--timeout", type=_duration, help="stop starting trials after this long: 90m, 2h, 3600")
    tu.add_argument("--folds", help="what a trial trains: one fold (default 0; under a time split the last, the "
                    "competition's own), a list such as 0,1 (one fold's score is noise-bound: two rank trials better), "
                    "or all")
    tu.add_argument("--storage", help="an RDB URL (e.g. postgresql://...) shared by several machines "
                    "(default: a journal file under data/tune/)")
    tu.add_argument("--recipe", help="the recipe searched around (default: gpu on CUDA, else cpu)")
    tu.add_argument("--data", help="the competition's data folder")
    tu.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    tu.add_argument("--show", action="store_true", help="the best trials, the best recipe, and plots; no training")

    lr = command("lr-find", help="the learning-rate range test under a phase's conditions; writes a PNG")
    lr.add_argument("competition")
    lr.add_argument("--phase", type=int, default=1, help="which phase of the recipe, from 1 (default 1)")
    lr.add_argument("--fold", type=int, default=0, help="which fold's training images (default 0)")
    lr.add_argument("--steps", type=int, default=100, help="at most this many batches (default 100)")
    _settings(lr)

    chk = command("check", help="sanity checks: a labelled batch PNG (a table: its columns), and overfitting "
                         "a few dozen images (rows)")
    chk.add_argument("competition")
    chk.add_argument("--images", type=int, default=48, help="how many images (rows of a table) to memorise (default 48)")
    chk.add_argument("--steps", type=int, default=200, help="at most this many steps (default 200)")
    chk.add_argument("--size", type=int, default=64, help="image size in pixels (default 64; a table has none)")
    chk.add_argument("--lr", type=float, help="learning rate (default 1e-3 for images, fine-tuned; 1e-2 for a "
                     "table's network, learnt from scratch)")
    chk.add_argument("--frozen", type=lambda t: tuple(t.split(",")), default=(),
                     help="layer groups to keep frozen, e.g. early,late (default: none)")
    _settings(chk)

    snaps = command("snapshots", help="list a run's snapshots (and SWA model) per fold")
    snaps.add_argument("competition")
    snaps.add_argument("--run", help="run name (default: the only run, or cpu/gpu)")

    sm = command("submit", help="validate a run's submission file, then submit it to Kaggle")
    sm.add_argument("competition")
    sm.add_argument("--run", help="run name (default: the only run)")
    sm.add_argument("-m", "--message", required=True, help="the submission's description on Kaggle")
    sm.add_argument("--data", help="the competition's data folder, for its sample submission (default: as run finds it)")

    sms = command("submissions", help="the competition's Kaggle submissions with their leaderboard scores "
                         "(stored in data/registry/submissions.parquet)")
    sms.add_argument("competition")

    kn = command("kernel", help="a folder for `kaggle kernels push` that runs the competition in a Kaggle "
                        "kernel with the internet off (written to data/kernels/)")
    kn.add_argument("competition")
    kn.add_argument("--dataset", action="store_true",
                    help="also build the dataset the kernel installs pipeline from: our wheel and what Kaggle's image lacks")
    kn.add_argument("--push", action="store_true", help="upload the dataset (with --dataset) and the kernel through the Kaggle API")
    kn.add_argument("--owner", help="Kaggle username (default: $KAGGLE_USERNAME or kaggle.json's)")
    kn.add_argument("--run-args", default="", metavar='"OPTIONS"',
                    help='options of `pipeline run` for the kernel, e.g. --run-args="--recipe gpu --train-folds all"')

    rp = command("report", help="the recorded runs as a leaderboard sorted by CV score, with a paired "
                        "comparison of two runs on their shared folds")
    rp.add_argument("competition", nargs="?", help="one competition (default: all recorded)")
    rp.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"),
                    help="paired comparison of these two runs (default: the best two)")
    rp.add_argument("--html", metavar="FILE", help="also write a self-contained page with the table and plots")

    bl = command("blend", help="combine finished runs of one competition on their OOF predictions (the same "
                 "folds): a run of its own, with its submission, scores and registry row")
    bl.add_argument("competition")
    bl.add_argument("runs", nargs="+", metavar="RUN", help="the runs to combine, two or more")
    bl.add_argument("--method", default="select", choices=("select", "mean", "stack"),
                    help="select: ensemble selection with replacement, bagged (default); mean: every run alike; "
                    "stack: a regularised linear model on the predictions, fitted fold by fold")
    bl.add_argument("--run", default="blend", help="the blend's own name (default blend); its submission is "
                    "submissions/<competition>/<NAME>.csv")
    bl.add_argument("--data", help="the competition's data folder (default: found as `pipeline run` finds it)")
    bl.add_argument("--seed", type=int, default=0, help="seeds select's bags of rows")

    command("list", help="the competitions this installation knows")
    nw = command("new", help="start a competition: competitions/<name>/ with a definition for its data layout")
    nw.add_argument("competition", help="its name, best Kaggle's slug (e.g. dog-breed-identification)")
    nw.add_argument("--layout", required=True, choices=("folders", "csv", "multilabel", "filename", "table"),
                    help="folders: train/<class>/<image>; csv: a CSV of id,label; multilabel: a CSV of "
                    "id,tags; filename: the label in the file name (cat.1.jpg); table: train.csv and test.csv "
                    "of columns, a number to predict")
    nw.add_argument("--data", help="a table's data folder, whose CSVs fill in the definition's columns "
                    "(default: data/<competition>/ when it holds them)")
    nw.add_argument("--slug", help="Kaggle's slug, if the name differs")
    nw.add_argument("--dir", default="competitions", help="where to create it (default: ./competitions)")
    dl = command("download", help="download a competition's data from Kaggle into data/<competition>/")
    dl.add_argument("competition")
    dl.add_argument("--force", action="store_true", help="download again even if it was downloaded before")
    return ap


def kernel(args: argparse.Namespace) -> str:
    from pipeline.competition import load
    from pipeline.kaggle.kernel import build_dataset, build_kernel, owner, push
    comp, user = load(args.competition), owner(args.owner)
    from pipeline.stages.context import resolve_recipe
    run_args = shlex.split(args.run_args)
    run = parser().parse_args(["run", comp.name, *run_args])  # a typo fails here, not an hour into the kernel
    # and settings the recipe cannot take (--tta 2 for a table's rows): the kernel has a GPU
    resolve_recipe(comp, run.recipe, True, {s.name: getattr(run, s.name) for s in SETTINGS}, run.assignments)
    workdir = Workdir.default()
    kernel_dir = build_kernel(comp, workdir.kernel(comp.name), user, run_args)
    lines = [f"kernel: {kernel_dir} (kernel-metadata.json, pipeline-{comp.name}.py)"]
    dataset_dir = None
    if args.dataset:
        dataset_dir = workdir.kernels / "dataset"
        wheels = build_dataset(dataset_dir, user)
        lines.append(f"dataset: {dataset_dir} ({', '.join(w.name for w in wheels)})")
    if args.push:
        lines.append(push(kernel_dir, dataset_dir))
    else:
        lines.append("upload: pipeline kernel ... --dataset --push, or "
                     + (f"kaggle datasets create -p {dataset_dir} && " if dataset_dir else "")
                     + f"kaggle kernels push -p {kernel_dir}")
    return "\n".join(lines)


def _duration(text: str) -> float:
    """Seconds from 3600, 90m or 2h."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        return float(text[:-1]) * units[text[-1]] if text[-1:] in units else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration such as 3600, 90m or 2h") from None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--"]:  # torchrun ... -m pipeline -- run ...: the separator may reach us
        argv = argv[1:]
    args = parser().parse_args(argv)
    rank = os.environ.get("RANK", "0")
    before = signal.getsignal(signal.SIGTERM)
    stop_on_sigterm()
    try:
        if args.command == "list":
            from pipeline.competition import available
            print("\n".join(available()))
        elif args.command == "new":
            from pipeline.scaffold import new
            folder = new(args.competition, args.layout, Path(args.dir), args.slug, Path(args.data) if args.data else None)
            print(f"created {folder}/competition.py and README.md; with its data in "
                  f"data/{args.competition}/: pipeline run {args.competition}")
        elif args.command == "download":
            from pipeline.competition import load
            from pipeline.kaggle.download import download
            comp = load(args.competition)
            download(comp, Workdir.default().data(comp.name), force=args.force)
        elif args.command in ("run", "lr-find", "check"):
            from pipeline.stages.context import start
            from pipeline.stages.run import format_scores, run_all, start_run
            from pipeline.stages.train import lr_find
            if args.command != "run" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
                raise PipelineError(f"`pipeline {args.command}` runs as one process; start it without torchrun")
            parallel = dict(parallel=args.parallel, sync_bn=args.sync_bn) if args.command == "run" else {}
            recipe, name = args.recipe, args.run
            if getattr(args, "trial", None):
                from pipeline.competition import load
                from pipeline.tuning.tune import trial_settings
                recipe, trial_run = trial_settings(load(args.competition), args.trial, args.storage, Workdir.default())
                name = name or trial_run
            begin = start_run if args.command == "run" else start  # (a run refused there is recorded too)
            r = begin(args.competition, data=args.data, run=name, recipe=recipe, device=args.device,
                      compile=args.compile, assignments=args.assignments, **parallel,
                      **{s.name: getattr(args, s.name) for s in SETTINGS})
            if args.command == "run":
                result = run_all(r)
                if result is not None:  # (rank 0's)
                    print(format_scores(result))
            elif args.command == "lr-find":
                print(lr_find(r, args.phase, args.fold, args.steps))
            else:
                from pipeline.stages.check import check
                passed, report = check(r, args.images, args.steps, args.size, args.lr, args.frozen)
                print(report)
                return 0 if passed else 1
        elif args.command == "submit":
            from pipeline.kaggle.leaderboard import submit
            print(submit(args.competition, args.run, args.message, args.data, Workdir.default()))
        elif args.command == "blend":
            from pipeline.blending.blend import blend
            blend(args.competition, args.runs, method=args.method, run=args.run, data=args.data, seed=args.seed)
        elif args.command == "submissions":
            from pipeline.kaggle.leaderboard import submissions
            print(submissions(args.competition, Workdir.default()))
        elif args.command == "report":
            from pipeline.tracking.report import report, write_html
            if args.compare and not args.competition:
                raise PipelineError("--compare needs the competition: pipeline report COMPETITION --compare A B")
            print(report(Workdir.default(), args.competition, tuple(args.compare) if args.compare else None))
            if args.html:
                print(f"html: {write_html(Path(args.html), Workdir.default(), args.competition)}")
        elif args.command == "tune":
            from pipeline.tuning.tune import show, tune
            if args.show:
                print(show(args.competition, study=args.study, storage=args.storage))
            else:
                print(tune(args.competition, study=args.study, trials=args.trials, sampler=args.sampler,
                           timeout=args.timeout, folds=args.folds, storage=args.storage, pruner=args.pruner,
                           recipe=args.recipe, data=args.data, device=args.device))
        elif args.command == "kernel":
            print(kernel(args))
        elif args.command == "snapshots":
            from pipeline.stages.predict import list_snapshots
            print(list_snapshots(args.competition, args.run))
    except BaseException as e:
        # The run is ending. torchrun sends every rank SIGTERM once one fails, and a SIGTERM now
        # would cut this line short with a traceback: later ones are ignored
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return ending(e, rank)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if "torch.distributed" in sys.modules:
            from pipeline.core.distributed import finish
            finish()
        signal.signal(signal.SIGTERM, before)
    return 0


def ending(e: BaseException, rank: str) -> int:
    """The exit code for a run that stopped on `e`, having said why in one line; `e` itself
    (a traceback) when it is not one we can say in a line."""
    who = "" if rank == "0" else f"rank {rank}: "
    if isinstance(e, PipelineError):
        print(f"pipeline: error: {who}{e}", file=sys.stderr)
        return 2
    if isinstance(e, KeyboardInterrupt):
        why = "stopped by SIGTERM" if str(e) == "SIGTERM" else "interrupted"
        print(f"pipeline: {who}{why}; run the same command again to resume", file=sys.stderr)
        return 130
    if isinstance(e, OSError):  # a folder made or a file opened outside files.atomic_path
        from pipeline.core.files import unwritable
        said = unwritable(e, Path(e.filename or "."))
        if isinstance(said, PipelineError):
            print(f"pipeline: error: {said}", file=sys.stderr)
            return 2
    if isinstance(e, RuntimeError) and lost_rank(e):
        said = re.sub(r"^\[[^\]]*\]\s*", "", str(e).splitlines()[0]).split(". ")[0][:160]  # gloo: "[file:line] why. ..."
        print(f"pipeline: error: rank {rank}: another rank stopped or stopped answering ({said}); "
              f"run the same command again to resume", file=sys.stderr)
        return 1
    raise e


def lost_rank(e: RuntimeError) -> bool:
    """A torch.distributed collective's error when another rank has died or timed out: gloo and
    NCCL raise RuntimeErrors (DistBackendError among them) naming themselves or the lost peer."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return False
    text = str(e)
    return isinstance(e, dist.DistError) or any(w in text for w in ("gloo", "NCCL", "Connection closed", "Timed out"))


if __name__ == "__main__":
    sys.exit(main())
