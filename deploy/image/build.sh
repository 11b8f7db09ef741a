#!/bin/sh
# Build baton's image from deploy/Dockerfile and leave it as localhost/baton:dev (`make image`).
#
#   deploy/image/build.sh      ENGINE=podman|docker IMAGE=localhost/baton:dev BASE=IMAGE CA_BUNDLE=FILE
#   deploy/image/build.sh --key    only print the inputs' key (below) and exit
#
# The build is skipped when IMAGE is already there with the label baton.inputs equal to the key of this
# build's inputs: the sha256 of the Dockerfile, this script, the build context (.dockerignore's files)
# and the base image's id; any change to one of them builds again, and so does REBUILD=1.
# The Debian base, in this order: BASE when given; debian:trixie-slim when the engine already has it;
# else one built from Debian's packages (base.sh: root and debootstrap; this works with no image
# registry at all), kept as localhost/baton-base:trixie and reused (REBUILD_BASE=1 makes it anew);
# else the engine pulls debian:trixie-slim from its registry. The build never pulls otherwise.
# CA_BUNDLE (default: the system's) is handed to the build as a secret, for pip and npm behind a proxy
# that re-signs TLS; it does not end up in the image. The build stage's image is removed after the build.
set -eu
# One image build at a time on this machine: the image test and the fleet test may start at once on a
# fresh machine, and two builds side by side took twice the base and twice the build; the second now
# waits, then finds what the first made.
# (--key only reads: it takes no lock, and builds no base.)
KEY_ONLY=; if [ "${1:-}" = --key ]; then KEY_ONLY=1; fi
if [ -z "$KEY_ONLY" ] && [ -z "${BATON_IMAGE_LOCKED:-}" ] && command -v flock >/dev/null; then
	export BATON_IMAGE_LOCKED=1
	exec flock "${TMPDIR:-/tmp}/baton-image.lock" "$0" "$@"
fi
cd "$(dirname "$0")/../.."
IMAGE=${IMAGE:-localhost/baton:dev}
OFFICIAL=docker.io/library/debian:trixie-slim
LOCAL_BASE=localhost/baton-base:trixie

if [ -z "${ENGINE:-}" ]; then
	if command -v podman >/dev/null; then ENGINE=podman
	elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then ENGINE=docker
	else
		echo "make image: no container engine: install podman (apt-get install podman runc), or Docker" >&2
		exit 2
	fi
fi
has_image() { "$ENGINE" image inspect "$1" >/dev/null 2>&1; }

if [ -n "${BASE:-}" ]; then :
elif has_image "$OFFICIAL"; then BASE=$OFFICIAL
elif has_image "$LOCAL_BASE" && [ -z "${REBUILD_BASE:-}" ]; then BASE=$LOCAL_BASE
elif [ -n "$KEY_ONLY" ]; then echo "make image: no base image yet (make image builds one)" >&2; exit 2
elif [ "$(id -u)" = 0 ] && command -v debootstrap >/dev/null; then
	ENGINE=$ENGINE deploy/image/base.sh "$LOCAL_BASE"
	BASE=$LOCAL_BASE
else
	echo "make image: no Debian base here and no debootstrap as root: pulling $OFFICIAL"
	"$ENGINE" pull "$OFFICIAL"
	BASE=$OFFICIAL
fi

# The key of what goes into the image: the files the context holds (as .dockerignore lets them in), their
# modes, the Dockerfile, this script and the base's id.
inputs() {  # $@: what find prints of each input file
	find deploy/Dockerfile deploy/image/build.sh .dockerignore pyproject.toml README.md src bin \
		package.json package-lock.json -type f ! -name '*.pyc' ! -path '*/__pycache__/*' \
		! -path '*.egg-info/*' "$@" 2>/dev/null
}
inputs_key() {
	{
		printf 'base %s\n' "$("$ENGINE" image inspect --format '{{.Id}}' "$BASE")"
		inputs -printf '%m %p\n' | LC_ALL=C sort
		inputs -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
	} | sha256sum | cut -c1-64
}
KEY=$(inputs_key)
if [ -n "$KEY_ONLY" ]; then echo "$KEY"; exit 0; fi

built=$("$ENGINE" image inspect --format '{{index .Config.Labels "baton.inputs"}}' "$IMAGE" 2>/dev/null || true)
if [ -z "${REBUILD:-}" ] && [ "$built" = "$KEY" ]; then
	echo "make image: $IMAGE is already built from these inputs (baton.inputs=$KEY): not built again" \
		"(REBUILD=1 builds it anyway)"
else
	set -- --file deploy/Dockerfile --tag "$IMAGE" --build-arg "BASE=$BASE" --label "baton.inputs=$KEY" \
		--network host
	if [ "$ENGINE" = podman ]; then set -- "$@" --pull=never; fi
	CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
	if [ -s "$CA_BUNDLE" ]; then set -- "$@" --secret "id=ca-certificates,src=$CA_BUNDLE"; fi
	echo "make image: $ENGINE build on $BASE (baton.inputs=$KEY)"
	"$ENGINE" build "$@" .
	# The build stage's image (1.5 GB, untagged) is of no use after the build: remove it (the next build
	# builds that stage again).
	# An interrupted earlier build can leave the engine's working containers on that stage (`podman ps
	# --external`): the image built is fine, so the clean-up only says so.
	if ! "$ENGINE" image prune --force --filter label=baton.stage=build >/dev/null; then
		echo "make image: the build stage's image is kept: a container left by an interrupted build uses it" \
			"(see \`$ENGINE ps --all --external\`, then \`$ENGINE rm --force ID\`)" >&2
	fi
fi

size=$("$ENGINE" image inspect --format '{{.Size}}' "$IMAGE")
echo "make image: $IMAGE, $((size / 1048576)) MiB unpacked"
