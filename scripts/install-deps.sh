#!/bin/sh
# install-deps.sh: install everything drover needs to build, test and run its demo on Debian 12.
# Idempotent; run as root. Used by the README commands and by .ci/run.
set -eu
PACKAGES="build-essential cmake pkg-config git ca-certificates curl openssl procps util-linux psmisc
 python3 libmicrohttpd-dev libsqlite3-dev sqlite3 libjansson-dev libyaml-dev libcurl4-openssl-dev libssl-dev
 uuid-dev libsystemd-dev systemd libcmocka-dev ansible-core ansible
 podman catatonit docker-registry debootstrap apache2-utils busybox-static"
missing=""
for p in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
        echo "install-deps: installing:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        # shellcheck disable=SC2086
        apt-get install -y -q --no-install-recommends $missing
fi
