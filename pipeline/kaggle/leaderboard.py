"""`pipeline submit` and `pipeline submissions`: a run's submission file, validated against the
competition's sample, sent through the Kaggle API; and the competition's past submissions with
their public and private scores, stored in the run registry (registry.py)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline import PipelineError
from pipeline.kaggle import api as kaggle_api
from pipeline.tracking import registry
from pipeline.competition import load
from pipeline.core.files import file_sha1, read_json
from pipeline.core.workdir import Workdir
from pipeline.kaggle.locate import find_data, not_found
from pipeline.stages import submission as sub
from pipeline.tables.layout import submission_ids


def submit(comp_name: str, run: str | None, message: str, data: str | None, workdir: Workdir) -> str:
    comp = load(comp_name)
    folder = workdir.existing_run(comp.name, run)
    name = folder.name
    path = workdir.submission(comp.name, name)
    if not path.is_file():
        raise PipelineError(f"{path}: run {name!r} has written no submission; finish it with "
                            f"`pipeline run {comp.name} --run {name}`")
    stale(folder, path, f"pipeline run {comp.name} --run {name}")
    # checked here, not by Kaggle after a day's submission slot is spent
    data_dir = find_data(comp, data, workdir)
    if data_dir is None:
        raise PipelineError(f"{not_found(comp, workdir)}; its sample submission checks the file before sending")
    if comp.table:  # (a table's rows are its test file's ids; it has no classes)
        test_ids, test_file = submission_ids(comp.layout, data_dir), data_dir / comp.layout.test
    else:
        if comp.classes is None:
            comp = comp.with_classes(comp.layout.train(data_dir, None)["label"])
        test_ids, test_file = list(comp.layout.test(data_dir)["id"]), None
    sample = sub.read_sample(sub.sample_file(data_dir, comp.submission), comp.submission, test_ids, comp.classes,
                             test_file)
    try:
        sub.validate(pd.read_csv(path, dtype=str, keep_default_na=False), sample, comp.classes, comp.submission,
                     comp.task)
    except PipelineError as e:
        raise PipelineError(f"{path}: not a valid submission, not sent: {e}") from None
    doing = f"submitting {path.name} to {comp.slug}"
    api = kaggle_api.connect(comp.slug, doing)
    with kaggle_api.errors(comp.slug, doing):
        response = api.competition_submit(str(path), message, comp.slug, quiet=True)
    if not response.ref:  # the client reports a failed upload in the message, not as an exception
        raise PipelineError(f"{doing}: {response.message or 'Kaggle gave no submission id'}; run again")
    registry.record_submissions(workdir, [{"competition": comp.name, "ref": response.ref, "run": name,
                                           "file_name": path.name, "description": message}])
    return (f"submitted {path} to {comp.slug} as #{response.ref}: {response.message}\n"
            f"`pipeline submissions {comp.name}` shows its scores once Kaggle has scored it")


def stale(folder: Path, path: Path, rerun: str) -> None:
    """Refuse a submission file that is not the finished work of the run's current settings: a
    re-run with other settings that stopped before writing its own leaves the earlier file."""
    made = (read_json(folder / "scores.json", {}) or {}).get("made_from")
    if made is None or made.get("settings.json") != _sha(folder / "settings.json"):
        raise PipelineError(f"{path}: not sent: the run's latest attempt ({folder / 'settings.json'}) did not "
                            f"finish, so this file may come from earlier settings; finish it with `{rerun}`")
    if made.get("submission") != _sha(path):
        raise PipelineError(f"{path}: not sent: the file changed after the run wrote it; `{rerun}` writes it again")


def _sha(path: Path) -> str | None:
    return file_sha1(path) if path.is_file() else None


def submissions(comp_name: str, workdir: Workdir) -> str:
    """Fetch the competition's submissions, store them in the registry, and print them."""
    comp = load(comp_name)
    doing = f"listing submissions to {comp.slug}"
    api = kaggle_api.connect(comp.slug, doing)
    with kaggle_api.errors(comp.slug, doing):
        listed = api.competition_submissions(comp.slug, page_size=100) or []
    runs = {p.name for p in workdir.runs(comp.name).glob("*")}
    known = registry.read_submissions(workdir, comp.name).set_index("ref")["run"].to_dict()

    def run_of(s) -> str | None:
        """Submitted from here: the run recorded then; else a file named like one of our runs."""
        stem = Path(s.file_name or "").stem
        return known.get(s.ref) or (stem if stem in runs else None)

    rows = [{"competition": comp.name, "ref": s.ref, "run": run_of(s), "file_name": s.file_name,
             "description": s.description, "date": s.date.isoformat(sep=" ", timespec="seconds") if s.date else None,
             "status": s.status.name.lower(), "public_score": s.public_score, "private_score": s.private_score,
             "error": s.error_description or None}
            for s in listed]
    table = registry.record_submissions(workdir, rows) if rows else registry.read_submissions(workdir, comp.name)
    table = table[table["competition"] == comp.name]
    if table.empty:
        return f"{comp.slug}: no submissions yet"
    lines = [f"{comp.slug}: {len(table)} submissions (stored in {workdir.submissions_table})",
             f"{'ref':>10}  {'date':19}  {'run':12} {'public':>8} {'private':>8}  {'status':8}  message"]
    for s in table.sort_values("date", ascending=False, na_position="last").itertuples():
        lines.append(f"{s.ref:>10}  {s.date or '':19}  {s.run or '-':12} {_score(s.public_score):>8} "
                     f"{_score(s.private_score):>8}  {s.status or '':8}  {s.description or ''}"
                     + (f"  ({s.error})" if s.error else ""))
    return "\n".join(lines)


def _score(x) -> str:
    return "-" if pd.isna(x) else f"{x:.5f}"
