#!/usr/bin/env bash
# Run ON the GPU machine: copy a packed assets folder (tools/device/pack_assets.sh) to DEST,
# decompressing *.xz with Python's lzma (the image need not have the xz tool).
# Usage: tools/device/unpack_assets.sh [SRC] [DEST]   (defaults: .device_assets /tmp/assets)
set -euo pipefail
src=${1:-.device_assets}
dest=${2:-/tmp/assets}
mkdir -p "$dest"
cp -r "$src"/. "$dest"/
find "$dest" -name '*.xz' -print0 | while IFS= read -r -d '' f; do
  python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$f" "${f%.xz}"
  rm "$f"
done
find "$dest" -type f | sort
