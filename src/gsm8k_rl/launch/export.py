"""`gsm8k-rl export`: a VERL FSDP checkpoint -> a HuggingFace model folder (transformers, vLLM).

    gsm8k-rl export --run-dir runs/ppo                 # latest checkpoint -> runs/ppo/export/global_step_N
    gsm8k-rl export --run-dir runs/ppo --step 250 --out /models/ppo-250

Uses VERL's own model merger (`python -m verl.model_merger merge --backend fsdp`), then puts the
base model's chat template and generation_config.json back, byte for byte, and checks that the
folder loads (config, tokenizer with the base model's chat template, weights).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from gsm8k_rl import UserError
from gsm8k_rl.launch.run_dir import RunDir, latest_checkpoint

log = logging.getLogger(__name__)

# Where transformers 5 keeps a tokenizer's chat template: this file, named extra templates in the
# folder, or (older checkpoints, e.g. Qwen3 on the hub) the "chat_template" key of tokenizer_config.json.
TEMPLATE_FILE = "chat_template.jinja"
TEMPLATE_DIR = "additional_chat_templates"
TOKENIZER_CONFIG = "tokenizer_config.json"
GENERATION_CONFIG = "generation_config.json"
ATTN_KEY = "attn_implementation"
EXPORT_INFO = "export_info.json"  # written last: a folder with it is a complete export


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-dir", required=True, help="the training run folder (`gsm8k-rl train --run-dir`)")
    p.add_argument("--step", type=int, default=None, help="global step to export (default: the latest checkpoint)")
    p.add_argument("--out", default=None, help="target folder (default: RUN/export/global_step_N)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export")
    p.add_argument("--base-model", default=None,
                   help="model whose chat template and generation config the export keeps "
                        "(default: the run's actor_rollout_ref.model.path, from resolved_config.yaml)")


def checkpoint_dir(run: RunDir, step: int | None) -> Path:
    if step is None:
        ckpt = latest_checkpoint(run)
        if ckpt is None:
            raise UserError(f"no checkpoint in {run.checkpoints} (no latest_checkpointed_iteration.txt): has training "
                            "saved one?")
    else:
        ckpt = run.checkpoints / f"global_step_{step}"
    if not (ckpt / "actor").is_dir():
        have = sorted(p.name for p in run.checkpoints.glob("global_step_*"))
        raise UserError(f"{ckpt / 'actor'} not found; checkpoints present: {have or 'none'}")
    return ckpt


def run_base_model(run: RunDir) -> str:
    """The model the run started from, as its resolved config names it."""
    if not run.resolved_config.is_file():
        raise UserError(f"{run.resolved_config} not found, so the base model is unknown; pass --base-model")
    model = (run.config().get("actor_rollout_ref") or {}).get("model") or {}
    if not model.get("path"):
        raise UserError(f"{run.resolved_config} has no actor_rollout_ref.model.path; pass --base-model")
    return str(model["path"])


def base_model_dir(model: str) -> Path:
    """A local folder holding the base model's tokenizer and generation files: the folder itself, or
    its hub snapshot (from the HF cache, which training filled)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, allow_patterns=["*.json", "*.jinja", "*.txt", "*.model",
                                                             f"{TEMPLATE_DIR}/*"]))
    except Exception as exc:  # offline without a cached copy, unknown id, ...
        raise UserError(f"base model {model!r} is not a local folder and its files could not be fetched "
                        f"({type(exc).__name__}: {exc}); pass --base-model DIR") from exc


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc})") from exc


def keep_base_files(base: Path, target: Path) -> dict[str, str]:
    """Make the export's chat template and generation config the base model's, byte for byte.

    VERL's merger writes both re-serialized by transformers from the checkpoint's copy, so the
    values match but the bytes and places may not (Qwen3's template, inline in tokenizer_config.json,
    comes back as chat_template.jinja). Eval renders prompts with the exported template and stops on
    the exported EOS ids, so anything but the base model's own files would move the comparison.
    Returns {file (or file#key): sha256} of what the export now holds.
    """
    kept: dict[str, str] = {}
    gen = base / GENERATION_CONFIG
    if gen.is_file():
        shutil.copyfile(gen, target / GENERATION_CONFIG)
        kept[GENERATION_CONFIG] = _sha(gen.read_bytes())
    else:  # the base stops on the tokenizer's EOS alone; so must the export
        (target / GENERATION_CONFIG).unlink(missing_ok=True)
    base_cfg, target_cfg = _read_json(base / TOKENIZER_CONFIG), _read_json(target / TOKENIZER_CONFIG)
    before = dict(target_cfg)
    if (base / TEMPLATE_FILE).is_file():
        shutil.copyfile(base / TEMPLATE_FILE, target / TEMPLATE_FILE)
        kept[TEMPLATE_FILE] = _sha((base / TEMPLATE_FILE).read_bytes())
        target_cfg.pop("chat_template", None)  # the file is the one template
    elif isinstance(template := base_cfg.get("chat_template"), (str, list)):
        (target / TEMPLATE_FILE).unlink(missing_ok=True)
        target_cfg["chat_template"] = template
        kept[f"{TOKENIZER_CONFIG}#chat_template"] = _sha(
            template.encode() if isinstance(template, str) else json.dumps(template, ensure_ascii=False).encode())
    else:
        raise UserError(f"{base}: the base model has no chat template ({TEMPLATE_FILE} or {TOKENIZER_CONFIG} "
                        "chat_template); the exported model could not be prompted as in training")
    if target_cfg != before:  # as transformers writes it
        (target / TOKENIZER_CONFIG).write_text(json.dumps(target_cfg, indent=2, ensure_ascii=False) + "\n",
                                               encoding="utf-8")
    if (target / TEMPLATE_DIR).is_dir():
        shutil.rmtree(target / TEMPLATE_DIR)
    if (base / TEMPLATE_DIR).is_dir():
        shutil.copytree(base / TEMPLATE_DIR, target / TEMPLATE_DIR)
        for f in sorted((base / TEMPLATE_DIR).iterdir()):
            kept[f"{TEMPLATE_DIR}/{f.name}"] = _sha(f.read_bytes())
    return kept


def keep_base_attention(base: Path, target: Path, checkpoint_config: Path) -> dict[str, str | None]:
    """Give the export the base model's attention setting, not the one it was trained with.

    VERL saves the model config as trained, so a run on the fast path exports a config asking for
    `torch_varlen` (registered only by this project) and one on flash-attn asks for
    flash_attention_2: either fails to load where that kernel is missing. The weights do not
    depend on the attention kernel. Returns {"checkpoint": as trained, "export": as written}.
    """
    trained = _read_json(checkpoint_config).get(ATTN_KEY) if checkpoint_config.is_file() else None
    wanted = _read_json(base / "config.json").get(ATTN_KEY) if (base / "config.json").is_file() else None
    cfg = _read_json(target / "config.json")
    if cfg.get(ATTN_KEY) != wanted:
        log.info("export config: %s %r (as merged) -> %r (the base model's)", ATTN_KEY, cfg.get(ATTN_KEY), wanted)
        if wanted is None:
            cfg.pop(ATTN_KEY)
        else:
            cfg[ATTN_KEY] = wanted
        (target / "config.json").write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return {"checkpoint": trained, "export": wanted}


def export_checkpoint(run_dir: str | Path, step: int | None = None, out: str | Path | None = None,
                      overwrite: bool = False, base_model: str | None = None) -> Path:
    """Merge the actor's FSDP shards into `out`, keep the base model's template and generation
    config, verify the result loads; returns `out`."""
    run = RunDir(Path(run_dir))
    ckpt = checkpoint_dir(run, step)
    base_model = base_model or run_base_model(run)
    base = base_model_dir(base_model)
    target = Path(out) if out else run.export / ckpt.name
    if (target / "config.json").exists() and not overwrite:
        raise UserError(f"{target} already holds a model; pass --overwrite to replace it")
    # Built in a sibling folder and renamed into place once verified: a kill leaves either no
    # `target` or a complete one, never a folder with a config and no (or half the) weights.
    partial = partial_dir(target)
    if partial.exists():
        log.warning("removing %s, left by an interrupted export", partial)
        shutil.rmtree(partial)
    partial.parent.mkdir(parents=True, exist_ok=True)
    # VERL's merger, with the project's attention registered (a fast-path checkpoint names it)
    cmd = [sys.executable, "-m", "gsm8k_rl.verl_ext.merge", "merge", "--backend", "fsdp",
           "--local_dir", str(ckpt / "actor"), "--target_dir", str(partial)]
    log.info("merging %s -> %s", ckpt / "actor", target)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"VERL's model merger failed ({' '.join(cmd)}):\n{proc.stderr[-3000:]}")
    kept = keep_base_files(base, partial)
    attn = keep_base_attention(base, partial, ckpt / "actor" / "huggingface" / "config.json")
    _verify(partial, base)
    (partial / EXPORT_INFO).write_text(json.dumps(
        {"checkpoint": str(ckpt), "step": int(ckpt.name.rsplit("_", 1)[1]), "command": cmd,
         "base_model": base_model, "kept_from_base_sha256": kept, "attn_implementation": attn}, indent=2) + "\n")
    if target.exists():  # --overwrite, or a folder without a complete export
        shutil.rmtree(target)
    partial.rename(target)
    return target


def partial_dir(target: Path) -> Path:
    """Where an export into `target` is built before it is renamed into place."""
    return target.with_name(f".{target.name}.partial")


def _verify(target: Path, base: Path) -> None:
    """The folder must load as a causal LM whose tokenizer carries the base model's chat template."""
    from transformers import AutoConfig, AutoTokenizer

    AutoConfig.from_pretrained(target)
    tok = AutoTokenizer.from_pretrained(target)
    if not getattr(tok, "chat_template", None):
        raise UserError(f"{target}: the exported tokenizer has no chat template")
    if tok.chat_template != AutoTokenizer.from_pretrained(base).chat_template:
        raise UserError(f"{target}: the exported tokenizer's chat template is not the base model's ({base})")
    if not list(target.glob("*.safetensors")):
        raise UserError(f"{target}: no weights (*.safetensors) were written")


def run(args: argparse.Namespace) -> int:
    target = export_checkpoint(args.run_dir, args.step, args.out, args.overwrite, args.base_model)
    print(f"exported HuggingFace model: {target}")
    return 0
