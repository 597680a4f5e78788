"""Everything VERL imports inside its own processes (driver, TaskRunner, Ray workers): this project's
code that runs within VERL 0.9.1, plugged in through VERL's and transformers' extension points, with
no edits to VERL.

- plugin.py           THE entry: VERL imports it in every process (VERL_USE_EXTERNAL_MODULES) and it
                      registers the rest (rollout, CPU platform, engines, attention, trainers)
- hf_rollout.py       an async rollout "hf" that generates with transformers (no vLLM)
- cpu_platform.py     a CPU platform: VERL's FSDP2 engine, Ray placement and checkpoints with no GPU
- engines.py          VERL's FSDP engines for the CPU, a critic that honours the configured attention,
                      a reference kept on the GPU when asked
- varlen_attention.py PyTorch's varlen FlashAttention as transformers' `torch_varlen`
- self_aligned.py     a new algorithm as a trainer in VERL's trainer registry (SA-PPO, SA-GRPO): the
                      place to look when adding one (plus its config in configs/)
- replay_buffer.py    VERL's replay buffer polled every 0.1 s (trainer.v1.sampler.custom_sampler)
- reward_manager.py   a reward manager that can re-score truncated responses (reward.reward_manager)
- batch_order.py      the record of the trainer's batch order (written by engines.py)
- merge.py            VERL's model merger with the attention registered (`gsm8k-rl export`)

This module itself imports no VERL: the launcher reads its constants.
"""

from __future__ import annotations

from gsm8k_rl import UserError

VERL_VERSION = "0.9.1"  # everything in this package leans on this release's internals
ROLLOUT_NAME = "hf"
# The module VERL imports in every process (VERL_USE_EXTERNAL_MODULES): it registers everything below
PLUGIN_MODULE = "gsm8k_rl.verl_ext.plugin"


def check_verl_version(found: str | None = None) -> str:
    """Raise unless the installed VERL is the pinned release; return its version.

    >>> check_verl_version("0.9.1")
    '0.9.1'
    >>> check_verl_version("0.10.0")
    Traceback (most recent call last):
    ...
    gsm8k_rl.UserError: the local backend is built for verl==0.9.1 but verl 0.10.0 is installed;
    install it with `pip install "verl[verl-core]==0.9.1"`
    """
    if found is None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("verl")
        except PackageNotFoundError:
            found = None
    if found != VERL_VERSION:
        what = f"verl {found} is installed" if found else "verl is not installed"
        raise UserError(
            f"the local backend is built for verl=={VERL_VERSION} but {what}; "
            f'install it with `pip install "verl[verl-core]=={VERL_VERSION}"`'
        )
    return found
