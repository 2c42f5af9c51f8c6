#!/usr/bin/env bash
# The whole test suite, from a fresh clone: setup (idempotent), static checks, then pytest against
# real MariaDB, Milvus Lite, moto's HTTP server and headless Chromium.
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh -k loader  # extra args go to pytest
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
cd "$ROOT"
bash scripts/setup.sh
export DGLBACKEND=pytorch
log "ruff"; "$VENV/bin/ruff" check .
log "mypy (handlers/, shared/)"; "$VENV/bin/mypy" handlers shared
log "cfn-lint"; "$VENV/bin/cfn-lint" template.yaml
log "pytest"
"$VENV/bin/pytest" -p no:cacheprovider -q -ra --durations=15 "$@"
