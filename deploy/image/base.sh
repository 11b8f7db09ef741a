#!/bin/sh
# Build a Debian base image from Debian's packages alone, for a machine that reaches no image registry
# (`make image` uses it when the Dockerfile's base is not already there). debootstrap fills a directory
# with a minimal Debian, which is trimmed as the official `-slim` images are and imported as an image.
# A machine that reaches a registry can skip this and build the Dockerfile on `debian:trixie-slim`.
#
#   deploy/image/base.sh [TAG]      (as root; ENGINE=podman|docker, SUITE=trixie, DEBIAN_MIRROR=URL)
#
# The mirror is the one this machine's apt uses (so a proxy or a local mirror keeps working), unless
# DEBIAN_MIRROR names another; the image's apt sources point at it too.
set -eu
TAG=${1:-localhost/baton-base:trixie}
SUITE=${SUITE:-trixie}
ENGINE=${ENGINE:-podman}

# The first Debian archive URI of this machine's apt sources (deb822 .sources or one-line .list).
apt_uri() {  # $1: "debian" or "debian-security"
	cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
		| sed -n -e 's/^URIs:[[:space:]]*//p' -e 's/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]*\)\{0,1\}\([^[:space:]]*\).*/\2/p' \
		| tr ' ' '\n' | grep -E "/$1/?\$" | head -n 1
}
MIRROR=${DEBIAN_MIRROR:-$(apt_uri debian)}
SECURITY=${DEBIAN_SECURITY_MIRROR:-$(apt_uri debian-security)}
[ -n "$MIRROR" ] || { echo "base.sh: no Debian mirror in /etc/apt/sources*; set DEBIAN_MIRROR" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "base.sh: debootstrap needs root: run as root (or sudo make image)" >&2; exit 2; }
command -v debootstrap >/dev/null || { echo "base.sh: debootstrap is missing: apt-get install debootstrap" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/root"
echo "base.sh: debootstrap $SUITE from $MIRROR into $root"
debootstrap --variant=minbase --components=main "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
	|| { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }

# apt sources as the official image writes them (deb822), at the same mirror.
rm -f "$root/etc/apt/sources.list"
{
	printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
		"$MIRROR" "$SUITE" "$SUITE"
	if [ -n "$SECURITY" ]; then
		printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
			"$SECURITY" "$SUITE"
	fi
} >"$root/etc/apt/sources.list.d/debian.sources"
# Slim: no package lists, caches, docs, man pages or locales beyond C (as debian:*-slim).
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
	"$root"/var/log/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/tmp/*
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
printf 'path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\npath-exclude /usr/share/man/*\npath-exclude /usr/share/info/*\npath-exclude /usr/share/locale/*\n' \
	>"$root/etc/dpkg/dpkg.cfg.d/docker-slim"

tar --numeric-owner -C "$root" -c . | "$ENGINE" import --change 'CMD ["bash"]' - "$TAG" >/dev/null
echo "base.sh: $TAG"
