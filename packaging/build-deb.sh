#!/bin/sh
# Build mpath's Debian package from the wheel, the man pages and the completion files
# (`make deb`). The Python dependencies are shipped inside /usr/lib/mpath at the
# versions the tests ran with (Debian's own are older than constraints.txt allows);
# the system libraries come from Debian (Depends). There is no systemd unit to ship:
# mpath has no long-running service yet.
#
# Usage: build-deb.sh WHEEL MANDIR COMPLETIONDIR VERSION OUTPUT.deb PIP
set -eu
wheel=$1 mandir=$2 compdir=$3 version=$4 output=$5 pip=$6
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
tree=$stage/tree

"$here/install-tree.sh" "$wheel" "$mandir" "$compdir" "$tree" /usr "$pip" /usr/bin/python3

doc=$tree/usr/share/doc/mpath
mkdir -p "$doc/docs" "$tree/DEBIAN"
gzip -9n < "$top/README.md" > "$doc/README.md.gz"
for page in "$top"/docs/*.md; do
    install -m 644 "$page" "$doc/docs/"
done
cat > "$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: mpath

Files: *
License: GPL-2.0-or-later
 On Debian systems, the full text of the GNU General Public License version 2
 can be found in /usr/share/common-licenses/GPL-2.

Files: usr/lib/mpath/*
Comment: mpath's Python dependencies, as pip installed them; each one's licence is in
 its *.dist-info folder under /usr/lib/mpath.
COPYRIGHT

arch=$(dpkg --print-architecture)
size=$(du -sk "$tree/usr" | cut -f1)
cat > "$tree/DEBIAN/control" <<CONTROL
Package: mpath
Version: $version-1
Architecture: $arch
Section: admin
Priority: optional
Maintainer: mpath developers <mpath@localhost>
Installed-Size: $size
Depends: python3 (>= 3.11), python3 (<< 3.12), libiscsi7, libudev1
Recommends: tgt, iproute2, nftables, libiscsi-bin
Suggests: multipath-tools, fio, libnbd-bin
Description: SCSI/iSCSI multipath path selector
 mpath chooses a path for every I/O over several iSCSI sessions or block devices
 to one LUN (by data quota, by shares learnt from measured speed, or by the
 dm-multipath and MPIO policies) and reroutes I/O when a path fails. It comes
 with a real iSCSI test rig (network namespace, veth per path, tgt), a simulator
 of the path selectors, an NBD export and dm-multipath helpers.
CONTROL
# Byte-compile on installation (as Debian's Python packages do), clean up on removal.
cat > "$tree/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    python3 -m compileall -q /usr/lib/mpath >/dev/null || true
fi
POSTINST
cat > "$tree/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
find /usr/lib/mpath -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true
PRERM
chmod 755 "$tree/DEBIAN/postinst" "$tree/DEBIAN/prerm"
(cd "$tree" && find usr -type f ! -path '*/DEBIAN/*' -exec md5sum {} + > DEBIAN/md5sums)

mkdir -p "$(dirname "$output")"
dpkg-deb --root-owner-group -Zxz --build "$tree" "$output" >/dev/null
echo "$output"
