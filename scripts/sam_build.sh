#!/usr/bin/env bash
# Lint and build the SAM application the way a user deploys it (no Docker):
#   sam validate --lint, python -m infra.stage_lambdas, sam build --cached (BuildMethod: makefile per function).
# Needs scripts/setup.sh first (aws-sam-cli in $VENV/sam-cli, a python3.12). Prints each built function's size.
#   bash scripts/sam_build.sh            # lint + build
#   bash scripts/sam_build.sh --no-lint  # build only
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
cd "$ROOT"
SAM="$VENV/sam-cli/bin/sam"
[ -x "$SAM" ] || { log "aws-sam-cli is not installed: run bash scripts/setup.sh"; exit 1; }
python312="$(find_python312)" || { log "python3.12 not found: run bash scripts/setup.sh"; exit 1; }
# sam build (and lambda_build.py's bytecode step) look for python3.12 on PATH; pip runs under $PY.
export PATH="$(dirname "$python312"):$PATH" PYTHON="$PY" SAM_CLI_TELEMETRY=0
if [ "${1:-}" != "--no-lint" ]; then
  log "sam validate --lint"; "$SAM" validate --lint --region us-east-1
fi
log "staging build/lambda/"; "$PY" -m infra.stage_lambdas
log "sam build (cached)"
"$SAM" build --cached --region us-east-1 2>&1 | { grep -vE "^WARNING: Location|^\s*$" || true; } >&2
for d in .aws-sam/build/*/; do
  [ -d "$d" ] && printf '%-18s %7.1f MiB unzipped (sum of file sizes)\n' "$(basename "$d")" \
    "$(find "$d" -type f -printf '%s\n' | awk '{s += $1} END {print s / 1048576}')" >&2
done
