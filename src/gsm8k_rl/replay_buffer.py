"""Alias of gsm8k_rl.verl_ext.replay_buffer: run folders made before the layered tree name
`pkg://gsm8k_rl.replay_buffer` as VERL's trainer.v1.sampler.custom_sampler.path."""

from gsm8k_rl.verl_ext.replay_buffer import QuickPollReplayBuffer, QuickPollReplayBufferAsync  # noqa: F401
