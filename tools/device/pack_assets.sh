#!/usr/bin/env bash
# Run HERE (not on the GPU machine): copy what a device run needs from ../shared into a gitignored
# folder that travels with `carry` (../shared itself never travels). Big text files go xz-compressed
# (tokenizer.json 11.4 MB -> 1.4 MB); tools/device/unpack_assets.sh restores them there.
# Usage: tools/device/pack_assets.sh [SHARED_DIR] [DEST]   (defaults: ../shared .device_assets)
set -euo pipefail
shared=${1:-../shared}
dest=${2:-.device_assets}
model="$shared/models/qwen3-1.7b"
mkdir -p "$dest/qwen3-1.7b"
cp "$model"/{config.json,generation_config.json,tokenizer_config.json} "$dest/qwen3-1.7b/"
xz -9 -c "$model/tokenizer.json" > "$dest/qwen3-1.7b/tokenizer.json.xz"
xz -9 -c "$shared/data/gsm8k/test.jsonl" > "$dest/gsm8k_test.jsonl.xz"
xz -9 -c "$shared/data/gsm8k/train.jsonl" > "$dest/gsm8k_train.jsonl.xz"
chmod -R u+w "$dest"
du -sh "$dest"
