#!/usr/bin/env bash
# Run `corral health check` against the real NVIDIA GPUs of this machine (the issue-11 GPU check).
#
# Needs: the NVIDIA driver (nvidia-smi works), Python >= 3.11, and either PyPI access or an
# existing venv with corral[gpu] installed (point VENV at it). Prints nvidia-smi's own view
# first, so the two can be compared, then corral's table. Exit status is corral's:
# 0 healthy (or degraded), 1 a faulty GPU, 2 NVML could not be read.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${VENV:-.venv-gpu-check}"
PYTHON="${PYTHON:-python3}"

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L; then
  echo "gpu-check-health: no working NVIDIA driver here (nvidia-smi missing or failing)" >&2
  exit 2
fi
expected="$(nvidia-smi -L | grep -c '^GPU ')"

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import corral.health.nvml, pynvml' >/dev/null 2>&1; then
  "$VENV/bin/python" -m pip install --quiet --upgrade 'pip>=24.2'
  "$VENV/bin/python" -m pip install --quiet -e '.[gpu]'
fi
"$VENV/bin/python" -c 'from importlib.metadata import version as v; print("nvidia-ml-py", v("nvidia-ml-py"))'

echo "== nvidia-smi =="
nvidia-smi --query-gpu=index,name,pci.bus_id,temperature.gpu,power.draw,ecc.errors.uncorrected.volatile.total,retired_pages.pending,clocks_event_reasons.active \
  --format=csv 2>/dev/null \
  || nvidia-smi --query-gpu=index,name,pci.bus_id,temperature.gpu,power.draw --format=csv

echo "== corral health check (expecting $expected GPUs) =="
if "$VENV/bin/corral" health --help >/dev/null 2>&1; then
  exec "$VENV/bin/corral" health check --expected "$expected" "$@"
fi
# Until `health` is registered on the main `corral` command, call its Typer app directly.
exec "$VENV/bin/python" -c 'import sys; from corral.cli.health import app; sys.argv[0] = "corral health"; app()' \
  check --expected "$expected" "$@"
