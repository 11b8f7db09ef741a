#!/bin/sh
# The trial fleet with podman on this host: `make fleet-up` / `make fleet-down` (docs/deploy.md).
#
#   deploy/fleet/fleet.sh up      build the images that are missing, make missing secrets, play the pods
#   deploy/fleet/fleet.sh down    remove the pods, their volumes and secrets (idempotent)
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

down() {
	render "$out/names" --quiet  # only the names of what to remove: throwaway secrets, never FLEET_SECRETS's
	# baton's pods before the services they are connected to; each group stopped in parallel, each
	# pod given its grace period (SIGTERM, then SIGKILL)
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
	podman kube play --replace "$out/services.yaml" >/dev/null
	while read -r port; do
		wait_for "$port" "$PY -c 'import socket; socket.create_connection((\"${port%:*}\", ${port##*:}), 1).close()'" 120
	done <"$out/ports"
	podman kube play --replace "$out/baton.yaml" >/dev/null
	api=$(cat "$out/api")
	wait_for "baton serve ($api)" "$PY -c 'import urllib.request; urllib.request.urlopen(\"$api/readyz\", timeout=2)'" 180
	echo "fleet: up in $(($(date +%s) - start)) s: $(tr '\n' ' ' <"$out/pods")"
	echo "fleet: the API is $api; a token: podman exec baton-api-0-api baton tokens create --name me --scope run"
}

case "${1:-}" in
	up) up ;;
	down) start=$(date +%s); down; echo "fleet: down in $(($(date +%s) - start)) s" ;;
	*) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
