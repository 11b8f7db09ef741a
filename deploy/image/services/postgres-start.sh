#!/bin/sh
# Start PostgreSQL on $PGPORT (127.0.0.1 by default), first making the cluster in $PGDATA when it is
# empty: superuser $POSTGRES_USER with $POSTGRES_PASSWORD (scram), and a database of the same name.
set -eu
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
user=${POSTGRES_USER:-baton}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	[ -n "${POSTGRES_PASSWORD:-}" ] || { echo "start: POSTGRES_PASSWORD is not set" >&2; exit 2; }
	pwfile=$(mktemp)
	printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
	"$bin/initdb" -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth=scram-sha-256 -E UTF8 --locale=C >/dev/null
	rm -f "$pwfile"
	echo "CREATE DATABASE \"$user\" OWNER \"$user\"" | "$bin/postgres" --single -D "$PGDATA" postgres >/dev/null
fi
exec "$bin/postgres" -D "$PGDATA" -p "${PGPORT:-5432}" -c "listen_addresses=${LISTEN_ADDRESS:-127.0.0.1}" \
	-c unix_socket_directories=/tmp -c max_connections=200
