#!/usr/bin/env bash
# One-time (idempotent) setup on a fresh Debian machine with Python 3.11, pip and apt:
#   - .venv with the project and every extra (train, serve, dev); torch 2.2.1 / DGL 2.1.0 pins come from pyproject
#   - MariaDB installed and running (scripts/ensure_mariadb.sh)
#   - Debian's chromium for the browser tests (optional: SKIP_CHROMIUM=1)
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
cd "$ROOT"

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  log "installing python3-venv"; apt_install python3-venv
fi
if [ ! -x "$PY" ]; then
  log "creating $VENV"; "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  log "installing the project into $VENV (first time: ~5 GB, a few minutes — torch 2.2.1 + DGL 2.1.0)"
  "$PY" -m pip install -q --upgrade pip
  "$PY" -m pip install -q -e '.[serve,train,dev]'
  touch "$stamp"
fi
# AWS SAM CLI (sam validate --lint, sam build) in its own virtualenv: its pinned dependencies must not
# move the project's. sam build needs python3.12 (the Lambda runtime) for the functions' bytecode and
# the built-package tests: taken from PATH or pyenv, else installed with apt where the release has it.
SAM_CLI_VERSION=1.170.0
SAM_VENV="$VENV/sam-cli"
if [ ! -x "$SAM_VENV/bin/sam" ] || ! "$SAM_VENV/bin/sam" --version 2>/dev/null | grep -q "$SAM_CLI_VERSION"; then
  log "installing aws-sam-cli $SAM_CLI_VERSION into $SAM_VENV"
  "$PYTHON" -m venv "$SAM_VENV"
  "$SAM_VENV/bin/pip" install -q --upgrade pip
  "$SAM_VENV/bin/pip" install -q "aws-sam-cli==$SAM_CLI_VERSION"
fi
if ! python312="$(find_python312)"; then
  log "installing python3.12 (the Lambda runtime's Python)"; apt_install python3.12 python3.12-venv || true
  python312="$(find_python312)" || { log "python3.12 is needed for sam build (Lambda python3.12 runtime)"; exit 1; }
fi
log "python3.12 for sam build: $python312"
bash scripts/ensure_mariadb.sh
if [ -z "${SKIP_CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then
  log "installing Debian's chromium (browser tests)"; apt_install chromium
fi
log "setup complete"
