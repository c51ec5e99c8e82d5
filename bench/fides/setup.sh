#!/usr/bin/env bash
# Ethyca Fides beside the gateway, for bench/fides_compare.py: its own virtualenv (never the project's),
# its own PostgreSQL database, its own configuration, its schema migrated by one start of its webserver.
#
#     bash bench/fides/setup.sh            # idempotent; FIDES_VERSION, FIDES_DB, PGHOST, PGPORT, PGUSER,
#                                          # FIDES_REDIS_DB override the defaults below
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="${FIDES_VERSION:-2.78.*}"
database="${FIDES_DB:-fides_bench}"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
python="${PYTHON:-python3.11}"

# 1. Its own virtualenv: Fides pins SQLAlchemy 1.4, pydantic-settings, FastAPI …, none of which may touch
#    the project's .venv.
if [[ ! -x "$here/.venv/bin/python" ]]; then
    "$python" -m venv "$here/.venv"
fi
"$here/.venv/bin/pip" install --quiet --upgrade pip
"$here/.venv/bin/pip" install --quiet "ethyca-fides==$version"
"$here/.venv/bin/python" -c 'import importlib.metadata as m; print("ethyca-fides", m.version("ethyca-fides"))'

# 2. Its own database on the same PostgreSQL server the gateway's bench uses.
if ! psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$database'" | grep -q 1; then
    psql -d postgres -c "CREATE DATABASE $database"
fi

# 3. Its configuration, written once (random secrets). Consent identity verification is off, so a
#    consent request needs no code sent by e-mail (no messaging service or Celery worker here); the rate
#    limiter is off as it is by default (it turns on only with security.rate_limit_client_ip_header).
if [[ ! -f "$here/fides.toml" ]]; then
    key="$("$here/.venv/bin/python" -c 'import secrets; print(secrets.token_hex(16))')"
    secret="$("$here/.venv/bin/python" -c 'import secrets; print(secrets.token_urlsafe(24))')"
    cat > "$here/fides.toml" <<TOML
[database]
server = "$PGHOST"
port = "$PGPORT"
user = "$PGUSER"
password = "bench"
db = "$database"
automigrate = true

[redis]
host = "127.0.0.1"
port = 6379
password = ""
db_index = ${FIDES_REDIS_DB:-9}
enabled = true

[security]
env = "prod"
app_encryption_key = "$key"
oauth_root_client_id = "fidesbench"
oauth_root_client_secret = "$secret"
cors_origins = ["http://127.0.0.1"]

[execution]
subject_identity_verification_required = false
disable_consent_identity_verification = true

[user]
analytics_opt_out = true

[logging]
level = "WARNING"
TOML
fi

# 4. One start of the webserver migrates the schema (automigrate); stop it once it answers.
port="$("$here/.venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$here/serve.sh" "$port" > "$here/.venv/first-start.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do
    if curl -fsS "http://127.0.0.1:$port/health" > /dev/null 2>&1; then
        echo "Fides answers on http://127.0.0.1:$port/health; schema migrated into $database"
        exit 0
    fi
    if ! kill -0 "$server" 2>/dev/null; then
        echo "Fides exited; see $here/.venv/first-start.log" >&2
        tail -30 "$here/.venv/first-start.log" >&2
        exit 1
    fi
    sleep 1
done
echo "Fides did not answer within 240 s; see $here/.venv/first-start.log" >&2
exit 1
