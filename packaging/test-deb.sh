#!/bin/sh
# Install mpath's Debian package in a clean Debian 12 root and run it there
# (`make deb-test`, root). mmdebstrap builds the root from MIRROR (apt + man-db
# only), apt installs the package with its dependencies from that mirror, and
# mpath runs inside: --version, a simulation, and its man page. The root is left
# in ROOT for inspection (`chroot ROOT mpath ...`); removing it is `rm -rf ROOT`.
#
# Usage: test-deb.sh PACKAGE.deb [MIRROR] [ROOT]
set -eu
deb=$(realpath "$1")
mirror=${2:-http://deb.debian.org/debian}
root=${3:-build/deb-test-root}
name=$(basename "$deb")
rm -rf "$root"
mmdebstrap --variant=apt --include=man-db \
    --customize-hook="copy-in $deb /tmp" \
    --customize-hook="chroot \"\$1\" apt-get install -y --no-install-recommends /tmp/$name" \
    --customize-hook='echo "# mpath --version"; chroot "$1" mpath --version' \
    --customize-hook='echo "# mpath simulate --mbps 50,200"; chroot "$1" mpath simulate --mbps 50,200' \
    --customize-hook='echo "# man mpath-bench | head"; chroot "$1" env MANWIDTH=80 man -P cat mpath-bench | head -n 12' \
    bookworm "$root" "deb $mirror bookworm main"
