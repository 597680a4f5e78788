"""VERL's replay buffer, polled every 0.1 s instead of every 2 s: the rollout's wait, not its work.

Why: VERL 0.9.1's v1 trainer times `gen` as the wait for the batch in its replay buffer
(`trainer/ppo/v1/trainer_base.py`, `_step_once`), and the buffer checks the TransferQueue for
finished responses, then sleeps `poll_interval` (2.0 s, a constructor default that no config key
reaches) before it checks again (`ReplayBuffer._wait_for_next_poll`). So a rollout that takes 2.1 s
is seen at 4 s: every `timing_s/gen` measured for this project is a multiple of 2 s plus ~0.1 s
(2.06, 4.08-4.13, 6.06, 8.09, 10.12, 12.09; experiments/notebook.md), while vLLM alone generates the
300-token step in 1.67 s. Validation waits the same way.

How: VERL's own extension point, `trainer.v1.sampler.custom_sampler.{path,name}`, loads a subclass of
its buffer; the launcher (`gsm8k_rl.launch.plan.replay_buffer_overrides`) points it here with
`trainer.v1.sampler.sampler_kwargs.poll_interval` (seconds, default 0.1). Nothing else changes: the same class
VERL would pick (the sync buffer for `trainer_mode=sync`, the async one otherwise), the same
sampling code. VERL passes a custom sampler only its base arguments, not the DAPO group filter's
or the failed-group refill's, so the launcher leaves VERL's own buffer in place when either is on.
"""

from __future__ import annotations

from typing import Any

from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer, ReplayBufferAsync

POLL_INTERVAL_S = 0.1  # one TransferQueue listing per poll: cheap next to a rollout of seconds


def _poll_interval(sampler_kwargs: Any) -> float:
    value = (sampler_kwargs or {}).get("poll_interval", POLL_INTERVAL_S)
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = -1.0
    if not value > 0:
        raise ValueError(f"trainer.v1.sampler.sampler_kwargs.poll_interval must be a number of seconds > 0, "
                         f"got {sampler_kwargs.get('poll_interval')!r}")
    return value


class _QuickPoll:
    """VERL's buffer construction, then `poll_interval` from sampler_kwargs, said once in train.log."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.poll_interval = _poll_interval(self.sampler_kwargs)
        # print, not logging: VERL's loggers have no handler in its Ray actors; stdout lands in the run's train.log
        print(f"[gsm8k_rl.verl_ext.replay_buffer] {type(self).__name__}: polling every {self.poll_interval} s",
              flush=True)


class QuickPollReplayBuffer(_QuickPoll, ReplayBuffer):
    """VERL's sync replay buffer (trainer_mode=sync), polled every `poll_interval` seconds."""


class QuickPollReplayBufferAsync(_QuickPoll, ReplayBufferAsync):
    """VERL's async replay buffer (every other trainer mode), polled every `poll_interval` seconds."""
