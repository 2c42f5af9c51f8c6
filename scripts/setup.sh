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
bash scripts/ensure_mariadb.sh
if [ -z "${SKIP_CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then
  log "installing Debian's chromium (browser tests)"; apt_install chromium
fi
log "setup complete"
