#!/usr/bin/env bash
# Local AWS for development (moto server by default, LocalStack with --localstack). See infra/local_cloud.py.
#   bash infra/local_cloud.sh [--data DIR] [--localstack] [--stop]
#   eval "$(bash infra/local_cloud.sh --quiet)"
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
exec "${VENV:-$ROOT/.venv}/bin/python" -m infra.local_cloud "$@"
