#!/usr/bin/env bash
# GPU check: the smoke DAG on CUDA with the cluster's compute settings (bf16, channels-last, loader
# workers), then each stage's job seconds. Meant to finish within five minutes on one GPU.
#
#   bench/gpu_check.sh [run dir]               on a machine with a GPU, from the checkout, after `make venv`
#   DEVICE=cpu bench/gpu_check.sh              the same DAG on the CPU (to try the script, or for a baseline)
#   GPU_JOBS=4 bench/gpu_check.sh              let four jobs share the GPU (default 1: one at a time, as on a
#                                              cluster node with one GPU per job; the job seconds stay unshared)
#   PYTHON=python3 WHEELS=.whl bench/gpu_check.sh
#                                              on a node whose own Python has PyTorch and no package index:
#                                              the wheels of bench/wheelhouse.py go into a temporary folder
#                                              on PYTHONPATH first (no venv, nothing installed for good)
#
# Writes bench/out/gpu_check_<device>.md and .json (the table is also printed), and the run under
# the run dir (default: a new temporary folder), whose logs/ say what each job did.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
CORES=${CORES:-$(nproc)}
RUN=${1:-$(mktemp -d -t gpu_check.XXXXXX)}
PYTHON=${PYTHON:-.venv/bin/python}
if [[ -n ${WHEELS:-} ]]; then
  SITE=$(mktemp -d -t gpu_check_site.XXXXXX)
  "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --target "$SITE" "$WHEELS"/*.whl
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
NAME=$("$PYTHON" -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')")
if [[ $DEVICE == cuda && $NAME == "no CUDA device" ]]; then
  echo "gpu_check: torch sees no CUDA device (DEVICE=cpu runs the check on the CPU)" >&2
  exit 1
fi
echo "gpu_check: smoke DAG on $DEVICE ($NAME), $CORES cores, run dir $RUN"
start=$(date +%s)
"$PYTHON" -m snakemake --cores "$CORES" --directory "$RUN" --configfile config/smoke.yaml \
  --config device="$DEVICE" "compute={precision: bf16, channels_last: true, loader_workers: auto}" \
  --resources gpu="${GPU_JOBS:-1}" --quiet rules
wall=$(( $(date +%s) - start ))
"$PYTHON" bench/stage_seconds.py "$RUN/benchmarks/smoke" --name "gpu_check_$DEVICE" \
  --title "Smoke DAG on $DEVICE ($NAME)" \
  --context "bench/gpu_check.sh: config/smoke.yaml, device $DEVICE ($NAME), bf16 + channels-last, --cores $CORES, ${GPU_JOBS:-1} GPU job(s) at once; wall ${wall} s."
