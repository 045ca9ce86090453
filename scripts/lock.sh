#!/usr/bin/env bash
# Regenerate requirements/lock.txt: every package `make` installs, pinned with hashes.
# The local engine's heavy packages (torch's CPU build, transformers, the packaged models)
# are pinned separately in requirements/local.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=(k8s gpu otel test dev ray)
args=()
for extra in "${extras[@]}"; do args+=(--extra "$extra"); done
.venv/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
  --no-emit-find-links "${args[@]}" -o requirements/lock.txt pyproject.toml requirements/build.in
