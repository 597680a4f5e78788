"""VERL's model merger (`python -m verl.model_merger`), run with this project's attention registered.

A run trained on the fast path names `torch_varlen` as its attention in the checkpoint's model
config (VERL saves the config as trained). transformers knows that name only once
`gsm8k_rl.verl_ext.varlen_attention` has registered it, so VERL's merger, started as its own process,
cannot build the model without this. Arguments are VERL's, unchanged:
`python -m gsm8k_rl.verl_ext.merge merge --backend fsdp --local_dir CKPT/actor --target_dir OUT`.
"""

from __future__ import annotations

from gsm8k_rl.verl_ext import varlen_attention


def main() -> None:
    from verl.model_merger.__main__ import main as verl_merger

    varlen_attention.register()
    verl_merger()


if __name__ == "__main__":
    main()
