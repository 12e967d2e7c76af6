#!/usr/bin/env bash
# The demo behind `make demo`: a 2-path iSCSI rig is built, shown, checked with
# libiscsi's own iscsi-inq on each path, one path is cut and restored, and the rig is
# removed again (also when anything fails or on Ctrl-C).
set -euo pipefail

name=demo
mpath rig down --name "$name" 2>/dev/null || true
trap 'mpath rig down --name "$name"' EXIT

echo "== mpath rig up --paths 2 --rate 400mbit,1gbit"
mpath rig up --name "$name" --paths 2 --size 256M --rate 400mbit,1gbit
mapfile -t urls < <(mpath rig status --name "$name" --json | python3 -c \
    'import json, sys; print("\n".join(json.load(sys.stdin)["urls"]))')

echo
echo "== each path answers INQUIRY (libiscsi's iscsi-inq):"
for url in "${urls[@]}"; do
    printf '  %s -> %s\n' "$url" "$(iscsi-inq "$url" | grep -E '^(Vendor|Product):' | tr -s ' ' | paste -sd ' ')"
done

echo
echo "== mpath rig fault 1 down"
mpath rig fault 1 down --name "$name"
mpath rig status --name "$name"
if timeout 3 iscsi-inq "${urls[0]}" >/dev/null 2>&1; then
    echo "  path 1 still answers?!" >&2; exit 1
fi
echo "  path 1 does not answer; path 2: $(iscsi-inq "${urls[1]}" | grep -c Vendor) reply"

echo
echo "== mpath rig fault 1 up"
mpath rig fault 1 up --name "$name"
mpath rig status --name "$name"
echo
echo "== mpath rig down"
