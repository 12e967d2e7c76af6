#!/usr/bin/env bash
# The demo behind `make demo`: a real 2-path iSCSI rig (400 and 1600 mbit/s), mpath
# balancing reads over it by measured speed (share) against plain round-robin, then a
# write+verify run during which path 1 is cut and restored. The rig is removed at the
# end, also when anything fails or on Ctrl-C.
set -euo pipefail

name=demo
mpath rig down --name "$name" 2>/dev/null || true
trap 'mpath rig down --name "$name"' EXIT

echo "== mpath rig up --paths 2 --rate 400mbit,1600mbit    (50 + 200 MB/s)"
mpath rig up --name "$name" --paths 2 --size 512M --rate 400mbit,1600mbit
mapfile -t urls < <(mpath rig status --name "$name" --json | python3 -c \
    'import json, sys; print("\n".join(json.load(sys.stdin)["urls"]))')

echo
echo "== each path answers INQUIRY (libiscsi's own iscsi-inq):"
for url in "${urls[@]}"; do
    printf '  %s -> %s\n' "$url" "$(iscsi-inq "$url" | grep -E '^(Vendor|Product):' | tr -s ' ' | paste -sd ' ')"
done

echo
echo "== load balancing by measured speed: mpath bench --policy share (sequential 256K reads)"
mpath bench --rig "$name" --policy share --seconds 4 --rw read --bs 256K --qd 32
echo
echo "== the same with round-robin: held back by the slow path"
mpath bench --rig "$name" --policy round-robin --seconds 4 --rw read --bs 256K --qd 32

echo
echo "== failover: write+verify while path 1 is cut at 2 s and restored at 4 s"
mpath bench --rig "$name" --seconds 6 --rw randwrite --bs 64K --qd 16 --span 64M --verify \
    --fault 2:1:down --fault 4:1:up
echo
echo "== mpath rig down"
