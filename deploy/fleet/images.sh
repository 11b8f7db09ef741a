#!/bin/sh
# The images the trial fleet runs, built on this machine from Debian's packages (no image registry):
# baton's own (deploy/image/build.sh: `make image`) and PostgreSQL, Redis and RabbitMQ
# (deploy/image/services/*.Containerfile) on the same Debian base. An image already there is reused;
# REBUILD=1 builds them all again.
#
#   deploy/fleet/images.sh                  (as root, as `make image`; ENGINE is podman)
#   deploy/fleet/images.sh postgres redis   (those services' images alone, and the base they need:
#                                            `make service-images`, the services trial of docs/environment.md)
set -eu
for service in "$@"; do
	case $service in
		postgres | redis | rabbitmq) ;;
		*) echo "images.sh: no image for a service named '$service' (postgres, redis, rabbitmq)" >&2; exit 2 ;;
	esac
done
# One image build at a time on this machine: the image test and the fleet test may start at once on a
# fresh machine, and two builds side by side took twice the base and twice the build; the second now
# waits, then finds what the first made.
if [ -z "${BATON_IMAGE_LOCKED:-}" ] && command -v flock >/dev/null; then
	export BATON_IMAGE_LOCKED=1
	exec flock "${TMPDIR:-/tmp}/baton-image.lock" "$0" "$@"
fi
cd "$(dirname "$0")/../.."
BASE=${BASE:-localhost/baton-base:trixie}
has_image() { podman image exists "$1"; }

if [ $# -eq 0 ] && { [ -n "${REBUILD:-}" ] || ! has_image localhost/baton:dev; }; then
	ENGINE=podman deploy/image/build.sh
fi
if ! has_image "$BASE"; then  # baton's image came from elsewhere (or was not asked for): made as build.sh makes it
	ENGINE=podman deploy/image/base.sh "$BASE"
fi
for service in ${*:-postgres redis rabbitmq}; do
	image=localhost/baton-$service:dev
	if [ -n "${REBUILD:-}" ] || ! has_image "$image"; then
		echo "fleet images: building $image on $BASE"
		start=$(date +%s)
		podman build --pull=never --network host --build-arg "BASE=$BASE" \
			--file "deploy/image/services/$service.Containerfile" --tag "$image" deploy/image/services >/dev/null
		echo "fleet images: $image in $(($(date +%s) - start)) s"
	fi
done
