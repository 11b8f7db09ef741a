#!/bin/sh
# The trial fleet with podman on this host: `make fleet-up` / `make fleet-down` (docs/deploy.md).
#
#   deploy/fleet/fleet.sh up      build the images that are missing, make missing secrets, start the fake
#                                 GitHub (fake_github.py, on the host), play the pods
#   deploy/fleet/fleet.sh down    remove the pods (each given its grace), their volumes and secrets, and
#                                 stop the fake GitHub (idempotent)
#
# FLEET_SECRETS=DIR holds the env files the generators read (default deploy/fleet/secrets; made with
# random passwords when missing), FLEET_BROKER=amqp|redis picks the broker for a new store.env (amqp).
# PY is a Python with PyYAML (make passes the virtualenv's). As root: podman's rootful store, and the
# images are built as `make image` builds baton's.
set -eu
cd "$(dirname "$0")/../.."
PY=${PY:-python3}
SECRETS=${FLEET_SECRETS:-deploy/fleet/secrets}
export CONTAINERS_CONF="$PWD/deploy/fleet/containers.conf"
[ "$(id -u)" = 0 ] || { echo "fleet: run as root (podman's rootful store, debootstrap for the images)" >&2; exit 2; }
command -v podman >/dev/null || { echo "fleet: podman is missing: make image-tools (apt-get install podman runc debootstrap)" >&2; exit 2; }
FAKE_PORT=28780  # the fake GitHub's API: deploy/fleet/forge.toml's api_url
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# $1: the env files' directory (made when missing), $2: --quiet or nothing
render() {
	"$PY" deploy/fleet/render.py secrets "$1" --broker "${FLEET_BROKER:-amqp}" ${2:-}
	"$PY" deploy/fleet/render.py podman deploy/fleet --secrets "$1" --out "$out"
}

# $1: what, $2: a command that succeeds once it is ready; up to $3 seconds
wait_for() {
	i=0
	until sh -c "$2" >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -le "$(($3 * 2))" ] || { echo "fleet: $1 is not ready after $3 s" >&2; return 1; }
		sleep 0.5
	done
}

# $1: the file listing the pods; each played with its own containers.conf, whose stop_timeout is the
# pod's terminationGracePeriodSeconds (podman 4.3 ignores that field): all at once
play() {
	pids=
	while read -r pod; do
		CONTAINERS_CONF="$out/play/$pod.conf" podman kube play --replace "$out/play/$pod.yaml" >/dev/null &
		pids="$pids $!"
	done <"$1"
	for pid in $pids; do wait "$pid" || { echo "fleet: podman kube play failed" >&2; return 1; }; done
}

# the fake GitHub's process (fake_github.py), when it runs: its pid file is in the secrets' directory
fake_pid() {
	pid=$(cat "$SECRETS/fake-github.pid" 2>/dev/null) || return 1
	grep -qs fake_github.py "/proc/$pid/cmdline" && echo "$pid"
}

down() {
	render "$out/names" --quiet  # only the names of what to remove: throwaway secrets, never FLEET_SECRETS's
	# baton's pods before the services they are connected to; each group stopped in parallel, each
	# pod given its grace period (SIGTERM, then SIGKILL after the stop_timeout its play gave it)
	for group in baton-pods service-pods; do
		while read -r pod; do podman pod rm --force --ignore "$pod" >/dev/null & done <"$out/$group"
		wait
	done
	while read -r volume; do
		if podman volume exists "$volume"; then podman volume rm --force "$volume" >/dev/null; fi
	done <"$out/volumes"
	for secret in "$out"/secrets/*.json; do
		name=$(basename "$secret" .json)
		if podman secret inspect "$name" >/dev/null 2>&1; then podman secret rm "$name" >/dev/null; fi
	done
	if pid=$(fake_pid); then
		kill "$pid"
		# gone, or a zombie (its cmdline is empty) its parent has yet to reap: the pytest worker that
		# ran `up` may be a child subreaper (baton's runner makes itself one) that never waits for it
		wait_for "the fake GitHub to stop" "! grep -qs fake_github.py /proc/$pid/cmdline" 30
	fi
	rm -f "$SECRETS/fake-github.pid"
}

up() {
	start=$(date +%s)
	deploy/fleet/images.sh
	render "$SECRETS"
	for secret in "$out"/secrets/*.json; do
		name=$(basename "$secret" .json)
		if podman secret inspect "$name" >/dev/null 2>&1; then podman secret rm "$name" >/dev/null; fi
		podman secret create "$name" "$secret" >/dev/null
	done
	api=$(cat "$out/api")
	if ! fake_pid >/dev/null; then
		# its own session: not stopped with this shell; its log (no token in it) beside the secrets
		setsid "$PY" deploy/fleet/fake_github.py --config deploy/fleet/forge.toml --secrets "$SECRETS" \
			--deliver-to "$api/webhooks/github" >"$SECRETS/fake-github.log" 2>&1 </dev/null &
		echo $! >"$SECRETS/fake-github.pid"
	fi
	wait_for "the fake GitHub (127.0.0.1:$FAKE_PORT; $SECRETS/fake-github.log)" \
		"$PY -c 'import socket; socket.create_connection((\"127.0.0.1\", $FAKE_PORT), 1).close()'" 60
	play "$out/service-pods"
	while read -r port; do
		wait_for "$port" "$PY -c 'import socket; socket.create_connection((\"${port%:*}\", ${port##*:}), 1).close()'" 120
	done <"$out/ports"
	play "$out/baton-pods"
	wait_for "baton serve ($api)" "$PY -c 'import urllib.request; urllib.request.urlopen(\"$api/readyz\", timeout=2)'" 180
	echo "fleet: up in $(($(date +%s) - start)) s: $(tr '\n' ' ' <"$out/pods")"
	echo "fleet: the API is $api; a token: podman exec baton-api-0-api baton tokens create --name me --scope run"
	echo "fleet: the fake GitHub is http://127.0.0.1:$FAKE_PORT/api/v3 (alice's token: $SECRETS/fake-github.env)"
}

case "${1:-}" in
	up) up ;;
	down) start=$(date +%s); down; echo "fleet: down in $(($(date +%s) - start)) s" ;;
	*) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
