#!/bin/sh
# build-ee.sh: build a drover execution environment (EE) image from Debian packages only, with no
# container registry: a debootstrap (minbase) root file system of Debian bookworm from the mirror
# apt already uses, python3 + ansible-core installed inside with apt-get in a chroot, apt caches
# cleaned, then `tar | podman import` as a local image (default localhost/drover-ee:latest).
#
# Usage: build-ee.sh [--build-dir DIR] [--image NAME] [--mirror URL] [--suite SUITE]
#                    [--packages "p1 p2"] [--rebuild] [--no-import] [--] [podman global options...]
# The root file system tarball is cached as DIR/drover-ee-rootfs.tar: a second run only imports it
# (unless --rebuild). Podman global options (e.g. --events-backend=file on machines without
# journald, or --root/--runroot for a private image store) follow `--`. Run as root.
set -eu

BUILD_DIR=${DROVER_EE_BUILD_DIR:-/var/tmp/drover-ee}
IMAGE=localhost/drover-ee:latest
SUITE=bookworm
MIRROR=
PACKAGES="python3 ansible-core openssh-client ca-certificates"
REBUILD=0
IMPORT=1
while [ $# -gt 0 ]; do
        case "$1" in
        --build-dir) BUILD_DIR=$2; shift 2;;
        --image) IMAGE=$2; shift 2;;
        --mirror) MIRROR=$2; shift 2;;
        --suite) SUITE=$2; shift 2;;
        --packages) PACKAGES=$2; shift 2;;
        --rebuild) REBUILD=1; shift;;
        --no-import) IMPORT=0; shift;;
        --) shift; break;;
        -h|--help) sed -n '2,12p' "$0"; exit 0;;
        *) echo "build-ee: unknown option $1" >&2; exit 2;;
        esac
done

[ "$(id -u)" = 0 ] || { echo "build-ee: must run as root" >&2; exit 1; }

# The mirror apt uses (deb822 sources first, then the one-line format).
if [ -z "$MIRROR" ]; then
        MIRROR=$(sed -n 's/^URIs:[[:space:]]*\(http[^ ]*\/debian\)\/*[[:space:]]*$/\1/p' \
                 /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
        [ -n "$MIRROR" ] || MIRROR=$(sed -n 's/^deb[[:space:]]\+\(http[^ ]*\/debian\)\/*[[:space:]].*/\1/p' \
                 /etc/apt/sources.list 2>/dev/null | head -n1)
        [ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
fi

TARBALL=$BUILD_DIR/drover-ee-rootfs.tar
mkdir -p "$BUILD_DIR"
start=$(date +%s)

if [ "$REBUILD" = 1 ] || [ ! -s "$TARBALL" ]; then
        ROOTFS=$BUILD_DIR/rootfs
        rm -rf "$ROOTFS" "$TARBALL.tmp"
        echo "build-ee: debootstrap --variant=minbase $SUITE from $MIRROR"
        debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >"$BUILD_DIR/debootstrap.log" 2>&1 || {
                tail -n 30 "$BUILD_DIR/debootstrap.log" >&2; exit 1; }
        # services must not start inside the chroot
        printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
        chmod 0755 "$ROOTFS/usr/sbin/policy-rc.d"
        cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf" 2>/dev/null || true
        echo "build-ee: apt-get install $PACKAGES (chroot)"
        # /proc for maintainer scripts, in a private mount namespace so nothing leaks on failure
        unshare --mount --fork sh -eu -c '
                mount --make-rprivate /
                mount -t proc proc "$1/proc"
                chroot "$1" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
                        LANG=C.UTF-8 sh -eu -c "apt-get update -q && apt-get install -y -q --no-install-recommends $2 && apt-get clean"
        ' build-ee "$ROOTFS" "$PACKAGES" >"$BUILD_DIR/apt.log" 2>&1 || { tail -n 30 "$BUILD_DIR/apt.log" >&2; exit 1; }
        # shrink: package lists, caches, docs, man pages, logs, python byte code caches stay
        rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/* "$ROOTFS"/var/cache/debconf/*-old \
               "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
               "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/* "$ROOTFS"/usr/sbin/policy-rc.d
        : >"$ROOTFS/etc/resolv.conf"
        chroot "$ROOTFS" ansible-playbook --version | head -n1
        tar --numeric-owner -C "$ROOTFS" -cf "$TARBALL.tmp" .
        mv "$TARBALL.tmp" "$TARBALL"
        rm -rf "$ROOTFS"
        echo "build-ee: root file system $TARBALL ($(du -h "$TARBALL" | cut -f1)) in $(( $(date +%s) - start )) s"
else
        echo "build-ee: using cached $TARBALL"
fi

if [ "$IMPORT" = 1 ]; then
        t0=$(date +%s)
        # shellcheck disable=SC2068
        podman "$@" import --quiet \
                --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
                --change 'ENV LANG=C.UTF-8' \
                --change 'CMD ["ansible-playbook", "--version"]' \
                --message "drover EE ($SUITE, $PACKAGES)" \
                - "$IMAGE" <"$TARBALL" >/dev/null
        echo "build-ee: imported $IMAGE in $(( $(date +%s) - t0 )) s"
fi
echo "build-ee: done in $(( $(date +%s) - start )) s"
