#!/usr/bin/env bash
# Run ON the node: the pieces of one payload made by tools/device/split_payload.sh, copied into
# STAGE in any order -> the files unpacked in DEST. Exits 3 (and joins nothing) while a piece is
# missing, 1 if the joined tar's sha256 is not the manifest's; the pieces are removed once unpacked.
# Usage: tools/device/join_payload.sh STAGE NAME DEST
set -euo pipefail
stage=$1; name=$2; dest=$3
manifest=$stage/$name.manifest
[ -f "$manifest" ] || { echo "$name: no manifest in $stage yet"; exit 3; }
n=$(awk '/^pieces/{print $2}' "$manifest"); want=$(awk '/^sha256/{print $2}' "$manifest")
have=$(ls "$stage" | grep -c "^$name.tar.part-" || true)
[ "$have" -eq "$n" ] || { echo "$name: $have of $n pieces in $stage"; exit 3; }
digest=$(cat "$stage/$name.tar.part-"* | sha256sum | cut -d' ' -f1)
[ "$digest" = "$want" ] || { echo "$name: sha256 $digest, the manifest says $want: a piece is corrupt"; exit 1; }
mkdir -p "$dest"
cat "$stage/$name.tar.part-"* | tar xf - -C "$dest"
rm -f "$stage/$name.tar.part-"*
echo "$name: $n pieces joined, sha256 ok, unpacked in $dest"
