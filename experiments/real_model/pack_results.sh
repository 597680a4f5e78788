#!/usr/bin/env bash
# Pack a run folder's small files (no checkpoints, no exported weights) into one archive:
#   experiments/real_model/pack_results.sh RUN_DIR ARCHIVE.tar.gz
set -euo pipefail
run=$1; archive=$2
cd "$run"
find . -type f \( -path ./checkpoints -prune -o -path ./export -prune -o -path ./hydra -prune -o -print \) \
  | grep -v -e '^./checkpoints/' -e '^./export/' | sort > /tmp/pack_list.txt
# what the checkpoints and the export hold, as a listing (their weights stay out of the archive)
{ find checkpoints export -maxdepth 3 2>/dev/null | sort; } > files_not_packed.txt || true
echo ./files_not_packed.txt >> /tmp/pack_list.txt
tar czf "$archive" -T /tmp/pack_list.txt
ls -la "$archive"
