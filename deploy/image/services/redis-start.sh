#!/bin/sh
# Start Redis on $REDIS_PORT (127.0.0.1 by default) with $REDIS_PASSWORD, appending to /data. The
# configuration goes in on stdin, so the password is in no argv and no file.
set -eu
[ -n "${REDIS_PASSWORD:-}" ] || { echo "start: REDIS_PASSWORD is not set" >&2; exit 2; }
exec redis-server - <<CONF
port ${REDIS_PORT:-6379}
bind ${LISTEN_ADDRESS:-127.0.0.1}
requirepass ${REDIS_PASSWORD}
dir /data
appendonly yes
save ""
CONF
