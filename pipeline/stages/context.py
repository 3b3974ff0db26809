"""What every stage of `pipeline run` shares (`Run`: the competition, the resolved recipe, the
data found, the device and ranks, the decoded-image caches) and `start`, which resolves the
settings and finds (or fetches) the data: the `data` stage."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from pipeline import PipelineError
from pipeline.competition import Competition, load
from pipeline.core.device import Device
from pipeline.core.distributed import MODES, SINGLE, Group, launch
from pipeline.core.files import files_fingerprint, fingerprint
from pipeline.core.workdir import Workdir, in_kernel, kaggle_root, run_name
from pipeline.kaggle.download import download
from pipeline.kaggle.locate import find_data, not_found
from pipeline.preprocess import tag as preprocess_tag
from pipeline.recipe import Recipe, validate as validate_recipe
from pipeline.search import apply, assigned
from pipeline.stages import submission as sub
from pipeline.training.models import GROUP_NAMES, create_model
from pipeline.stages.source import Source
from pipeline.tables.model import widths
from pipeline.tables.source import TableSource
from pipeline.vision.images import ImageCache
from pipeline.vision.sizing import image_facts, minutes, native_size, sized
from pipeline.vision.source import ImageSource, prior
from pipeline.vision.transforms import SYMMETRIES


def say(*parts) -> None:
    print(*parts, flush=True)  # progress lines must show up promptly in logs and Kaggle kernels


@dataclass
class Run:
    """Everything the stages share: settings, where things live, and the image tables."""
    comp: Competition
    recipe: Recipe
    recipe_name: str
    name: str
    workdir: Workdir
    data_dir: Path
    dev: Device
    train: pd.DataFrame             # id, label (and an image's path)
    targets: np.ndarray             # per training example: class index, 0/1 tag row or number (tasks.py)
    test: pd.DataFrame              # id (and an image's path)
    source: Source                  # the examples themselves: images, or a table's rows (source.py)
    keys: dict = field(default_factory=dict)
    times: dict = field(default_factory=dict)
    log: Callable = say
    ranks: Group = SINGLE           # every process of the run (torchrun), this one among them
    parallel: str | None = None     # "data" or "folds" when there are several
    sync_bn: bool = False           # BatchNorm statistics over every rank's share of a batch
    on_epoch: Callable | None = None  # (step, validation score) after every epoch: a tuning trial's pruner

    @property
    def run_dir(self) -> Path:
        return self.workdir.run(self.comp.name, self.name)

    @property
    def submission_path(self) -> Path:
        return self.workdir.submission(self.comp.name, self.name)

    def fold_dir(self, k: int) -> Path:
        return self.run_dir / f"fold{k}"

    @property
    def train_images(self) -> ImageCache:
        return self.source.train_images

    @property
    def test_images(self) -> ImageCache:
        return self.source.test_images


def start(comp_name: str, *, workdir: Workdir | None = None, data: str | None = None, run: str | None = None,
          recipe: Recipe | str | None = None, device: str = "auto", compile: bool = False,
          parallel: str | None = None, sync_bn: bool = False, log: Callable = say, assignments: Sequence[str] = (),
          **overrides) -> Run:
    """Resolve the settings and find the data (the `data` stage). `overrides` are recipe.SETTINGS,
    `assignments` NAME=VALUE texts (--set); `parallel` and `sync_bn` are for several processes
    under torchrun (distributed.py)."""
    t0 = time.time()
    workdir = workdir or Workdir.default()
    comp = load(comp_name)
    if parallel not in (None, *MODES):
        raise PipelineError(f"--parallel {parallel}: use one of {', '.join(MODES)}")
    if run is not None:
        run_name(run)
    ranks, device = launch(parallel, device)
    parallel = parallel or ("data" if ranks.active else None)
    log = log if ranks.main else _quiet
    dev = Device.pick(device, compile)
    if parallel == "data":
        dev = replace(dev, group=ranks)
    if sync_bn and (parallel != "data" or dev.device.type != "cuda"):
        raise PipelineError("--sync-bn needs --parallel data on GPUs (torch's SyncBatchNorm runs on CUDA only)")
    recipe, recipe_name = resolve_recipe(comp, recipe, dev.device.type == "cuda", overrides, assignments)
    if parallel == "data" and recipe.batch_size % ranks.world:
        raise PipelineError(f"batch size {recipe.batch_size} is the global batch and must split evenly over "
                            f"{ranks.world} ranks; use --batch-size {recipe.batch_size // ranks.world * ranks.world or ranks.world}")
    data_dir = ranks.on_main(lambda: find_or_fetch(comp, data, workdir, log))  # (one download)
    found = (_table if comp.table else _images)(comp, data_dir, workdir, recipe, log)
    recipe = found.pop("recipe", recipe)  # (AUTO phases sized by the images)
    r = Run(recipe=recipe, recipe_name=recipe_name, name=run or recipe_name, workdir=workdir, data_dir=data_dir,
            dev=dev, log=log, ranks=ranks, parallel=parallel, sync_bn=sync_bn, **found)
    comp = r.comp
    ranks.agree("the settings and the data", fingerprint(asdict(recipe), r.keys["data"], comp.name, r.name))
    r.times["data"] = time.time() - t0
    return r


def resolve_recipe(comp: Competition, recipe: Recipe | str | None, cuda: bool, overrides: dict,
                   assignments: Sequence[str] = ()) -> tuple[Recipe, str]:
    """(the recipe a run trains, its name): the one named, the device's default (gpu on CUDA, else
    cpu) or one given, with the command line's `overrides` (recipe.SETTINGS) and then its
    `assignments` (--set NAME=VALUE, named as a search names them: search.py), checked before any
    data is read (`pipeline kernel` checks a kernel's this way before it is pushed)."""
    if isinstance(recipe, Recipe):
        recipe_name = "custom"
    else:
        recipe_name = recipe or ("gpu" if cuda else "cpu")
        if recipe_name not in comp.recipes:
            raise PipelineError(f"{comp.folder}/competition.py: no recipe {recipe_name!r} "
                                f"(has {', '.join(comp.recipes)}); pass --recipe NAME")
        recipe = comp.recipes[recipe_name]
    recipe = recipe.with_overrides(**overrides)
    params = assigned(recipe, assignments)
    twice = [n for n in params if overrides.get(n) is not None]
    if twice:
        raise PipelineError(f"--{twice[0].replace('_', '-')} and --set {twice[0]}: give the setting once")
    recipe = apply(recipe, params)
    validate_recipe(recipe, GROUP_NAMES, f"recipe {recipe_name!r} of {comp.name}", SYMMETRIES[comp.symmetry],
                    images=not comp.table)
    if comp.table and not recipe.boosted:
        widths(recipe.arch)  # an unknown --arch: said now
    return recipe, recipe_name


def _table(comp: Competition, data_dir: Path, workdir: Workdir, recipe: Recipe, log: Callable) -> dict:
    """A table's rows (tables/source.py), read once and cached; its target's range set from them."""
    source = TableSource(comp.layout, data_dir, workdir.cache(comp.name), comp.features, log=log)
    train_ids, test_ids = source.ids()
    target = source.targets()
    comp = comp.with_range(target.to_numpy())
    test = pd.DataFrame({"id": test_ids})
    sub.read_sample(sub.sample_file(data_dir, comp.submission), comp.submission, list(test["id"]), comp.classes,
                    data_dir / comp.layout.test)
    train = pd.DataFrame({"id": train_ids, "label": target.to_numpy()})
    return dict(comp=comp, train=train, targets=comp.targets(train["label"]), test=test, source=source,
                keys={"data": fingerprint(source.key, comp.target_range)})


def _images(comp: Competition, data_dir: Path, workdir: Workdir, recipe: Recipe, log: Callable) -> dict:
    """The image tables (layouts.py) and their decoded-image caches (images.py). What is wrong
    with the training data and what is wrong with the test data (its folder, the sample) are
    refused together, in one error: a user fixes both before running again, not one per run."""
    for line in getattr(comp.layout, "notices", lambda root: [])(data_dir):  # (a layout of one's own may not say)
        log(f"{comp.name}: {line}")
    problems: list[str] = []
    train = _found(problems, lambda: _train_table(comp, data_dir, log))
    if train is not None and comp.classes is None:
        comp = comp.with_classes(train["label"])
        log(f"{comp.name}: {len(comp.classes)} classes from the training labels: "
            f"{', '.join(comp.classes[:8])}{', ...' if len(comp.classes) > 8 else ''}")
    test = _found(problems, lambda: comp.layout.test(data_dir))
    if test is not None:  # checked now, not after an hour of training: the sample must list exactly the test images
        _found(problems, lambda: sub.read_sample(sub.sample_file(data_dir, comp.submission), comp.submission,
                                                 list(test["id"]), comp.classes))
    if problems:
        raise PipelineError("; also, ".join(problems))
    if recipe.auto:
        recipe = _sized(comp, recipe, list(train["path"]), len(test), log)
    # an unknown --arch, a weights file that doesn't fit: said now, before "fold 0 of 5"
    create_model(recipe.arch, len(comp.classes), recipe.weights)
    cache = workdir.cache(comp.name)
    train_files, test_files = files_fingerprint(list(train["path"])), files_fingerprint(list(test["path"]))
    targets = comp.targets(train["label"])
    source = ImageSource(
        ImageCache(list(train["path"]), cache, "decode train", train_files, resize=comp.resize,
                   preprocess=comp.preprocess, truncated=comp.truncated_images),
        ImageCache(list(test["path"]), cache, "decode test", test_files, resize=comp.resize,
                   preprocess=comp.preprocess, truncated=comp.truncated_images,
                   on_unreadable=_unreadable_test(comp, len(test), log)),
        comp.symmetry, prior(comp.task, targets, comp.classes))
    made = [preprocess_tag(comp.preprocess)] if comp.preprocess else []  # (training and prediction see its images)
    made += ["truncated-kept"] if comp.truncated_images == "keep" else []  # (their grey rows too; back to refusing them)
    return dict(comp=comp, recipe=recipe, train=train, targets=targets, test=test,
                source=source, keys={"data": fingerprint(train_files, list(train["label"]), test_files, *made)})


def _sized(comp: Competition, recipe: Recipe, paths: list[Path], tests: int, log: Callable) -> Recipe:
    """The recipe's AUTO sizes and epochs filled in from the images (vision/sizing.py), said in one
    line with the minutes it should take."""
    facts = image_facts(paths, tests, len(comp.classes), seed=recipe.seed)
    recipe = sized(recipe, facts)
    validate_recipe(recipe, GROUP_NAMES, f"the recipe sized for {comp.name}", SYMMETRIES[comp.symmetry])
    phases = ", ".join(f"{i + 1}) {p.epochs} epochs{' of the head' * p.precompute} at {p.size}px"
                       for i, p in enumerate(recipe.phases))
    took = f"{facts.side}px" if facts.side else "unknown (no header could be read)"
    cost = (f"; about {minutes(recipe, facts):.0f} minutes on a 2-core CPU (budget {recipe.budget:g})"
            if recipe.budget is not None else "")
    trained = recipe.fold_list()
    folds = ("every fold" if len(trained) == recipe.folds else f"fold {trained[0]}" if len(trained) == 1
             else f"folds {trained[0]}-{trained[-1]}") + f" of {recipe.folds}"
    log(f"{comp.name}: recipe sized to {facts.train} training images (median shorter side {took}; {recipe.arch} "
        f"was trained at {native_size(recipe.arch)}px): phases {phases}; {folds}{cost}")
    return recipe


def _train_table(comp: Competition, data_dir: Path, log: Callable) -> pd.DataFrame:
    """The training table (layouts.py), refused if its labels are all alike."""
    train = comp.layout.train(data_dir, comp.classes)
    comp.require_two_kinds(train["label"], data_dir)
    for line in comp.unseen_classes(train["label"], data_dir):
        log(f"{comp.name}: {line}")
    return train


def _found(problems: list[str], find: Callable):
    """What `find()` returns, or None with its error added to `problems`."""
    try:
        return find()
    except PipelineError as e:
        problems.append(str(e))
        return None


def _unreadable_test(comp: Competition, images: int, log: Callable) -> Callable:
    """The one notice on test images that cannot be read (images.py keeps a placeholder row for
    each): the submission needs their rows, so they are predicted from the training labels."""
    how = ("each tag's base rate in the training labels, thresholded as any row" if comp.multilabel else
           "the class prior (each class's share of the training labels)")

    def say(bad: list, listing: Path) -> None:
        first = ", ".join(p for _, p, _ in bad[:3]) + (", ..." if len(bad) > 3 else "")
        log(f"{comp.name}: {len(bad)} of {images} test images are not readable (corrupt, cut short or not images): "
            f"{first}; their rows are predicted from {how}, and listed with the reason in {listing}: "
            f"replace them and run again to predict them from their pixels")
    return say


def find_or_fetch(comp: Competition, data_arg: str | None, workdir: Workdir, log: Callable = say) -> Path:
    """The competition's data where it is found (locate.py); else built (digits) or downloaded
    from Kaggle into data/<competition>/, never inside a kernel."""
    found = find_data(comp, data_arg, workdir)
    if found is not None:
        return found
    local = workdir.data(comp.name)
    if comp.make_data is not None:
        log(f"writing {comp.name} data to {local}")
        comp.make_data(local)
        return local
    if in_kernel():
        raise PipelineError(f"no data for {comp.name} under {kaggle_root() / 'input'}: kernels have no network; "
                            f"attach the competition (Add Input -> Competitions -> {comp.slug}) and run again")
    try:
        return download(comp, local, log=log)
    except PipelineError as e:
        raise PipelineError(f"{not_found(comp, workdir)}; downloading it from Kaggle failed: {e}") from None


def _quiet(*parts) -> None:
    """The log of ranks other than 0: rank 0 speaks for the run."""
