#!/usr/bin/env bash
# A local Milvus *server* (milvus-lite's gRPC server in its own process), so that the API and the loader
# are separate processes talking to it over the network, as on AWS (a Milvus Lite file can only be opened
# by one process at a time). Data in .local/milvus-server/, pid in .local/milvus-server.pid.
#   bash scripts/milvus_server.sh start   # idempotent; prints the URI (MILVUS_PORT, default 19530)
#   bash scripts/milvus_server.sh stop
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
cd "$ROOT"
PORT="${MILVUS_PORT:-19530}"
PIDFILE=.local/milvus-server.pid
URI="http://127.0.0.1:$PORT"
up() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
case "${1:-start}" in
  start)
    if ! up; then
      mkdir -p .local
      log "starting milvus-lite server on 127.0.0.1:$PORT (data .local/milvus-server)"
      env -u MILVUS_URI nohup "$VENV/bin/milvus-lite" server --data-dir .local/milvus-server \
        --host 127.0.0.1 --port "$PORT" > .local/milvus-server.log 2>&1 &
      echo $! > "$PIDFILE"
      for _ in $(seq 1 150); do up && break; sleep 0.2; done
      up || { log "milvus-lite server did not start: see .local/milvus-server.log"; exit 1; }
    fi
    echo "$URI" ;;
  stop)
    if [ -f "$PIDFILE" ]; then kill "$(cat "$PIDFILE")" 2>/dev/null || true; rm -f "$PIDFILE"; fi ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
