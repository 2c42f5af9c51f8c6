#!/usr/bin/env bash
# The whole test suite, from a fresh clone: setup (idempotent), static checks, sam validate --lint and
# sam build, then pytest against real MariaDB, Milvus Lite and a Milvus server, moto's HTTP server and
# headless Chromium.
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh -k loader  # extra args go to pytest
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
cd "$ROOT"
bash scripts/setup.sh
export DGLBACKEND=pytorch
log "ruff"; "$VENV/bin/ruff" check .
log "mypy (handlers/, shared/, training_job/)"; "$VENV/bin/mypy" handlers shared training_job
log "cfn-lint"; "$VENV/bin/cfn-lint" template.yaml
# sam validate --lint + sam build of every function as a user deploys it (no Docker); the deploy tests
# then check the built folders' sizes and run the built handlers (tests/integration/deploy/).
bash scripts/sam_build.sh
export GRAPHREC_SAM_BUILT=1
log "pytest"
"$VENV/bin/pytest" -p no:cacheprovider -q -ra --durations=15 "$@"
