#!/usr/bin/env bash
# Run HERE: pack files for a node that takes files only in transfers of limited size. The paths are
# put in one uncompressed tar (wheels and GGUF files do not compress), cut into pieces of at most
# MIB MiB, one folder per transfer: OUT/NAME-NN/{NAME.tar.part-NN, NAME.manifest}. The manifest
# (number of pieces, sha256 of the whole tar) travels in every folder, so the node can tell when
# it has them all; tools/device/join_payload.sh joins, checks and unpacks them there.
# Usage: tools/device/split_payload.sh NAME MIB OUT PATH...   (PATHs relative to the current folder)
set -euo pipefail
name=$1; mib=$2; out=$3; shift 3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar cf "$tmp/$name.tar" "$@"
( cd "$tmp" && split -d -a 2 -b "${mib}M" "$name.tar" "$name.tar.part-" )
n=$(ls "$tmp" | grep -c "^$name.tar.part-")
digest=$(sha256sum "$tmp/$name.tar" | cut -d' ' -f1)
for piece in "$tmp/$name.tar.part-"*; do
  k=${piece##*-}
  mkdir -p "$out/$name-$k"
  mv "$piece" "$out/$name-$k/"
  printf 'pieces %s\nsha256 %s\nbytes %s\n' "$n" "$digest" "$(stat -c %s "$tmp/$name.tar")" > "$out/$name-$k/$name.manifest"
done
echo "$name: $n pieces of <= $mib MiB in $out/$name-NN ($(du -sh "$tmp/$name.tar" | cut -f1), sha256 $digest)"
