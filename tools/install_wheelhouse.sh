#!/usr/bin/env bash
# Install, with no network, a wheelhouse made by tools/build_wheelhouse.py.
#
# Usage:
#   tools/install_wheelhouse.sh [--no-check] WHEELHOUSE... TARGET_DIR   # pip --target; then export PYTHONPATH=TARGET_DIR
#   tools/install_wheelhouse.sh [--no-check] --env WHEELHOUSE...        # into $PYTHON's own environment (e.g. a venv)
#
# WHEELHOUSE: one or more folders holding the wheels and split parts (NAME.whl.part-000, ...):
# the whole wheelhouse, its batch-NN/ folders, or a staging folder they were all copied into.
# Parts are joined, every file is checked against MANIFEST.json (complete set, sha256), then pip
# installs with --no-index --no-deps (the wheelhouse is already a resolved closure). Unless
# --no-check, tools/device/check_requirements.py then verifies every declared requirement.
# PYTHON (default python3) is the interpreter whose version and platform the wheels were built for.
# Packages installed with --target shadow the image's copies only through PYTHONPATH, which comes
# before site-packages on sys.path (how transformers 5.10.4 replaces an image's 5.17 for VERL).
set -euo pipefail

PYTHON=${PYTHON:-python3}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
check=1
into_env=0
args=()
for a in "$@"; do
  case "$a" in
    --no-check) check=0 ;;
    --env) into_env=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) args+=("$a") ;;
  esac
done
if (( into_env )); then
  (( ${#args[@]} >= 1 )) || { echo "usage: $0 --env WHEELHOUSE..." >&2; exit 2; }
  sources=("${args[@]}"); target=""
else
  (( ${#args[@]} >= 2 )) || { echo "usage: $0 WHEELHOUSE... TARGET_DIR  (or --env WHEELHOUSE...)" >&2; exit 2; }
  sources=("${args[@]:0:${#args[@]}-1}"); target=${args[-1]}
fi
for s in "${sources[@]}"; do [[ -d $s ]] || { echo "wheelhouse folder $s does not exist" >&2; exit 2; }; done

work=$(mktemp -d "${TMPDIR:-/tmp}/wheelhouse.XXXXXX")
trap 'rm -rf "$work"' EXIT

manifest=$(find "${sources[@]}" -name MANIFEST.json -print -quit)
[[ -n $manifest ]] || { echo "no MANIFEST.json under ${sources[*]}: not a build_wheelhouse.py wheelhouse" >&2; exit 2; }

# Whole wheels are linked, split ones joined in part order.
while IFS= read -r -d '' f; do ln -sf "$(realpath "$f")" "$work/$(basename "$f")"; done \
  < <(find "${sources[@]}" -name '*.whl' -print0)
while IFS= read -r -d '' first; do
  base=$(basename "${first%.part-000}")
  find "${sources[@]}" -name "$base.part-*" -print0 | xargs -0 -n1 basename | sort -u > "$work/$base.parts"
  : > "$work/$base"
  while IFS= read -r part; do
    cat "$(find "${sources[@]}" -name "$part" -print -quit)" >> "$work/$base"
  done < "$work/$base.parts"
done < <(find "${sources[@]}" -name '*.whl.part-000' -print0)

# Complete and intact, or stop naming what is wrong (e.g. a batch that was never copied).
# Only the manifest's wheels are installed: strays in a shared staging folder are reported, not installed.
"$PYTHON" - "$manifest" "$work" "${sources[@]}" > "$work/install.list" <<'EOF'
import hashlib, json, sys
from pathlib import Path
manifest, work, sources = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]), [Path(s) for s in sys.argv[3:]]
listed = {w["file"] for w in manifest["wheels"]}
strays = sorted(p.name for p in work.glob("*.whl") if p.name not in listed)
if strays:
    print(f"ignoring {len(strays)} wheel(s) not in the manifest: {', '.join(strays)}", file=sys.stderr)
present = {p.name for s in sources for p in s.rglob("*.part-*")}
def batches_of(name):
    return [i + 1 for i, b in enumerate(manifest.get("batches", [])) if name in b]
bad = []
for w in manifest["wheels"]:
    f = work / w["file"]
    lost = [p for p in w["parts"] if p not in present]
    if lost:  # name the parts and the batches they travel in, not just "corrupt"
        bad += [f"missing {p} (part of {w['file']}; batch {batches_of(p)})" for p in lost]
    elif not f.exists():
        where = batches_of(w["file"])
        bad.append(f"missing {w['file']}" + (f" (batch {where})" if where else ""))
    elif hashlib.sha256(f.read_bytes()).hexdigest() != w["sha256"]:
        bad.append(f"sha256 mismatch for {w['file']} (parts {w['parts'] or '-'}: incomplete or mixed copies?)")
if bad:
    sys.exit("wheelhouse incomplete:\n  " + "\n  ".join(bad))
print(f"wheelhouse complete: {len(manifest['wheels'])} wheels, {manifest['total_bytes'] / 2**20:.1f} MiB", file=sys.stderr)
print("\n".join(str(work / f) for f in sorted(listed)))
EOF
mapfile -t wheels < "$work/install.list"

pip_args=(--no-index --no-deps --no-cache-dir --disable-pip-version-check --root-user-action=ignore -q)
if (( into_env )); then
  "$PYTHON" -m pip install "${pip_args[@]}" "${wheels[@]}"
  echo "installed into $("$PYTHON" -c 'import sys; print(sys.prefix)')"
else
  mkdir -p "$target"
  "$PYTHON" -m pip install "${pip_args[@]}" --no-compile --upgrade --target "$target" "${wheels[@]}"
  cp "$manifest" "$target/MANIFEST.json"
  echo "installed into $target; use it with: export PYTHONPATH=$(realpath "$target")\${PYTHONPATH:+:\$PYTHONPATH}"
fi

if (( check )); then
  if (( into_env )); then
    "$PYTHON" "$here/device/check_requirements.py" "$manifest"
  else
    PYTHONPATH="$target${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" "$here/device/check_requirements.py" "$manifest"
  fi
fi
