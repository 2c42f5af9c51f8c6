#!/usr/bin/env bash
# The whole product on one machine with embedded defaults:
#   data (real MovieLens if present, else the synthetic generator) -> train PinSage -> load into
#   a local Milvus server + MariaDB -> serve the API and the web page on http://127.0.0.1:8000
# Milvus runs as its own process (scripts/milvus_server.sh: milvus-lite's gRPC server on 127.0.0.1:19530),
# so while the API serves, another shell can put a new run live:
#   GRAPHREC_MILVUS_URI=http://127.0.0.1:19530 .venv/bin/python -m handlers.loader .local/runs/<run_id>/manifest.json
# Environment knobs: DATA (folder, ml-1m.zip or s3:// prefix), MAX_MINUTES (training budget, default 5),
# EPOCHS (default 1000: the time budget and --patience decide), PORT (default 8000), DOWNLOAD=1 (fetch the official ml-1m.zip when online),
# GRAPHREC_MILVUS_URI (an http(s):// Milvus/Zilliz instead of the local server), MILVUS_PORT (default 19530).
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
cd "$ROOT"
SKIP_CHROMIUM=1 bash scripts/setup.sh
export DGLBACKEND=pytorch
DATA="${DATA:-.local/data/ml-1m}"
RUNS="${GRAPHREC_ARTIFACT_URI:-.local/runs}"
export GRAPHREC_ARTIFACT_URI="$RUNS"
export GRAPHREC_MYSQL_DATABASE="${GRAPHREC_MYSQL_DATABASE:-graphrec}"
# Local demo: people sign in by name (development sign-in; docs/people.md). Deployed stacks use Cognito.
export GRAPHREC_AUTH_MODE="${GRAPHREC_AUTH_MODE:-dev}"
if [[ "${GRAPHREC_MILVUS_URI:-}" != http://* && "${GRAPHREC_MILVUS_URI:-}" != https://* ]]; then
  GRAPHREC_MILVUS_URI="$(bash scripts/milvus_server.sh start)"
fi
export GRAPHREC_MILVUS_URI

"$PY" - <<PYEOF
import pymysql
from shared.config.settings import get_settings
conf = get_settings().resolved_mysql()
db = conf.pop("database")
conn = pymysql.connect(**conf)
with conn.cursor() as cur:
    cur.execute(f"CREATE DATABASE IF NOT EXISTS \`{db}\` CHARACTER SET utf8mb4")
conn.close()
PYEOF

train_args=()
if [ -n "${DOWNLOAD:-}" ]; then
  train_args+=(--download)
elif [[ "$DATA" != s3://* ]] && [ ! -f "$DATA/ratings.dat" ] && [[ "$DATA" != *.zip ]]; then
  log "no MovieLens data at $DATA: generating MovieLens-1M-sized synthetic data there"
  "$PY" -m training_job synthetic --out "$DATA"
fi
log "training PinSage (budget ${MAX_MINUTES:-5} min)"
"$PY" -m training_job train --data "$DATA" --output "$RUNS" --epochs "${EPOCHS:-1000}" \
  --max-minutes "${MAX_MINUTES:-5}" "${train_args[@]}"
manifest="$(ls -1d "$RUNS"/*/manifest.json | sort | tail -n 1)"
log "loading $manifest into Milvus ($GRAPHREC_MILVUS_URI) + MariaDB"
"$PY" -m handlers.loader "$manifest"
log "serving on http://127.0.0.1:${PORT:-8000}  (API docs: /docs); load another run meanwhile with"
log "  GRAPHREC_MILVUS_URI=$GRAPHREC_MILVUS_URI $PY -m handlers.loader <manifest.json>"
exec "$VENV/bin/uvicorn" handlers.api:app --host 127.0.0.1 --port "${PORT:-8000}"
