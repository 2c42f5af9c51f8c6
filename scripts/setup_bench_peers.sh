#!/usr/bin/env bash
# The bench's peer models (RecTools SASRec) in their OWN virtualenv, never a product dependency:
# rectools needs pandas<3 and its own torch (the product pins torch 2.2.1 for DGL). torch is pinned to the
# CPU build that lies in the local wheel cache (torch==2.13.0) so pip does not pull a multi-GB CUDA build.
# Used by bench/bench_training.py --peers sasrec (bench/peers/sasrec_rectools.py); CI does not need it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
PEERS="${PEERS_VENV:-$ROOT/.venv/bench-peers}"
TORCH="${PEERS_TORCH:-torch==2.13.0}"
stamp="$PEERS/.installed-rectools-0.19"
if [ ! -f "$stamp" ]; then
  "$PYTHON" -m venv "$PEERS"
  "$PEERS/bin/pip" install -q --upgrade pip
  "$PEERS/bin/pip" install -q "$TORCH"
  "$PEERS/bin/pip" install -q "rectools[torch]==0.19.0" "pandas<3" "$TORCH"
  touch "$stamp"
fi
"$PEERS/bin/python" -c "import rectools, torch; print('rectools', rectools.__version__, 'torch', torch.__version__)"
