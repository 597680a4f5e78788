"""Alias package: the VERL plugin moved to gsm8k_rl/verl_ext/, the launcher side to launch/local_backend.py.

Kept because run folders made before the layered tree start VERL with
`VERL_USE_EXTERNAL_MODULES=gsm8k_rl.local_backend.plugin` (their command.sh and resolved_config.yaml,
among them the recorded runs in experiments/results/).
"""
