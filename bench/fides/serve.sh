#!/usr/bin/env bash
# Fides' webserver as `fides webserver` runs it (uvicorn, one process, its FastAPI app), but on loopback
# only: `fides webserver` binds 0.0.0.0. A second argument runs that many uvicorn worker processes.
#
#     bench/fides/serve.sh PORT [WORKERS]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export FIDES__CONFIG_PATH="$here/fides.toml"
# Its working directory is inside the ignored .venv: a first start writes migration backups (CSV) there.
mkdir -p "$here/.venv/run"
cd "$here/.venv/run"
exec "$here/.venv/bin/uvicorn" fides.api.main:app --host 127.0.0.1 --port "$1" --workers "${2:-1}" \
    --log-level warning --no-access-log
