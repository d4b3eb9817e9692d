#!/usr/bin/env bash
# The other frameworks compare_pytorch.py measures besides Debian's PyTorch: the newest torch and
# tensorflow/keras from PyPI, in a virtual environment outside the repository (about 7.5 GB: PyPI's
# Linux torch wheel pulls its CUDA libraries even for CPU use). Idempotent; DDP_BENCH_VENV moves it.
set -euo pipefail
venv=${DDP_BENCH_VENV:-$HOME/.cache/ddp-bench-venv}
if ! python3 -c "import ensurepip" 2>/dev/null; then
  apt-get update -qq && apt-get install -y -qq python3-venv
fi
[[ -x $venv/bin/python ]] || python3 -m venv "$venv"
if ! "$venv/bin/python" -c "import torch, tensorflow, safetensors" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --progress-bar off torch tensorflow safetensors
fi
"$venv/bin/python" -c "import torch, tensorflow; print('PyPI torch', torch.__version__, '/ tensorflow', tensorflow.__version__, 'in', '$venv')" 2>/dev/null
