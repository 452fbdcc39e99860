#!/bin/sh
# build-deb.sh: build the drover Debian packages (drover-controller, drover-agent, droverctl).
#
# Installs the build dependencies with apt-get when some are missing (root needed only then),
# copies the source tree and packaging/debian/ into a temporary build tree outside the source
# directory (the source tree stays clean), runs "dpkg-buildpackage -us -uc -b" there and puts the
# .deb files into <source>/dist/ (or $DROVER_DIST_DIR). See docs/packaging.md.
#
# Environment: DROVER_DIST_DIR (output directory), DROVER_KEEP_BUILD=1 (keep the build tree),
# DEB_BUILD_OPTIONS (passed on; default "parallel=2 noddebs").
set -eu

SRC=$(cd "$(dirname "$0")/.." && pwd)
DIST=${DROVER_DIST_DIR:-$SRC/dist}
DEBIAN_DIR=$SRC/packaging/debian

# Tools needed before the build dependencies can even be checked.
TOOLS="debhelper dpkg-dev fakeroot"

apt_install() {
        if [ "$(id -u)" != 0 ]; then
                echo "build-deb: missing build dependencies ($*); run as root or install them" >&2
                exit 1
        fi
        export DEBIAN_FRONTEND=noninteractive
        apt-get -o DPkg::Lock::Timeout=300 update -q
        apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "$@"
}

missing=""
for p in $TOOLS; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
        echo "build-deb: installing:$missing"
        # shellcheck disable=SC2086
        apt_install $missing
fi

VERSION=$(dpkg-parsechangelog -l "$DEBIAN_DIR/changelog" -S Version)
UPSTREAM=${VERSION%-*}
SOURCE=$(dpkg-parsechangelog -l "$DEBIAN_DIR/changelog" -S Source)

WORK=$(mktemp -d /tmp/drover-deb.XXXXXX)
cleanup() {
        if [ "${DROVER_KEEP_BUILD:-0}" = 1 ]; then
                echo "build-deb: build tree kept in $WORK"
        else
                rm -rf "$WORK"
        fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TREE=$WORK/$SOURCE-$UPSTREAM
mkdir -p "$TREE"
# Everything but version control, build directories, outputs and byte-code caches.
tar -C "$SRC" \
    --exclude=./.git --exclude='./build*' --exclude=./dist --exclude=./debian \
    --exclude=__pycache__ --exclude='*.pyc' \
    -cf - . | tar -C "$TREE" -xf -
cp -a "$DEBIAN_DIR" "$TREE/debian"

cd "$TREE"
if ! dpkg-checkbuilddeps 2>/dev/null; then
        echo "build-deb: installing the build dependencies of debian/control"
        if [ "$(id -u)" != 0 ]; then
                dpkg-checkbuilddeps || true
                echo "build-deb: run as root to install them" >&2
                exit 1
        fi
        export DEBIAN_FRONTEND=noninteractive
        apt-get -o DPkg::Lock::Timeout=300 update -q
        apt-get -o DPkg::Lock::Timeout=300 build-dep -y -q --no-install-recommends "$TREE"
fi

export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-parallel=2 noddebs}"
dpkg-buildpackage -us -uc -b

mkdir -p "$DIST"
n=0
for deb in "$WORK"/*.deb; do
        [ -e "$deb" ] || continue
        cp "$deb" "$DIST/"
        echo "build-deb: $DIST/$(basename "$deb")"
        n=$((n + 1))
done
if [ "$n" -eq 0 ]; then
        echo "build-deb: dpkg-buildpackage produced no .deb" >&2
        exit 1
fi
