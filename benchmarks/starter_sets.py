"""The default run of new competitions against their hidden test answers (issue 31): for each
set, `pipeline run NAME [ARGS]` in a fresh work folder (nothing cached), timed as a whole, its
submission scored by heldout.py; the sizing line (the recipe and the minutes it said before it
started) is printed beside the minutes it took. Sets are competitions outside the repo:

    PIPELINE_COMPETITIONS=/work/scratch/sets/competitions PIPELINE_DATA=/work/scratch/sets/data \\
        .venv/bin/python benchmarks/starter_sets.py hymenoptera weather brain_mri \\
        --answers /work/scratch/sets/answers --work /work/scratch/sets/runs [--run old -- --set phase1.size=128 ...]

Prints a Markdown table: set, held-out accuracy (n), minutes said, minutes taken, sized recipe."""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from heldout import score  # noqa: E402


def run(name: str, args, extra: list[str]) -> str:
    work = args.work / f"{name}-{args.run}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = work / "run.log"
    t0 = time.time()
    with open(log, "w") as out:
        done = subprocess.run([sys.executable, "-m", "pipeline", "run", name, "--run", args.run, *extra], cwd=work,
                              stdout=out, stderr=subprocess.STDOUT)
    took = (time.time() - t0) / 60
    text = log.read_text()
    if done.returncode:
        return f"| {name} | failed ({log}) | | {took:.1f} | |"
    sized = re.search(r"recipe sized to .*?: phases (.*?)(; about (\d+) minutes.*)?$", text, re.M)
    accuracy, n = score(pd.read_csv(work / "submissions" / name / f"{args.run}.csv", dtype=str),
                        pd.read_csv(args.answers / f"{name}.csv", dtype=str))
    said = sized[3] if sized and sized[3] else "-"
    return f"| {name} | {accuracy:.4f} ({n}) | {said} | {took:.1f} | {sized[1] if sized else 'not sized'} |"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sets", nargs="+")
    ap.add_argument("--answers", type=Path, required=True, help="folder of <set>.csv hidden answers")
    ap.add_argument("--work", type=Path, required=True, help="where each run's fresh work folder goes")
    ap.add_argument("--run", default="cpu", help="the run's name")
    args, extra = ap.parse_known_args()
    extra = [a for a in extra if a != "--"]
    print("| set | held-out accuracy (n) | minutes said | minutes taken | sized recipe |")
    print("|---|---|---|---|---|")
    for name in args.sets:
        print(run(name, args, extra), flush=True)


if __name__ == "__main__":
    main()
