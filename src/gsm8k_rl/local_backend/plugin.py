"""Alias of gsm8k_rl.verl_ext.plugin, the module VERL imports in every process: run folders made
before the layered tree name this one (VERL_USE_EXTERNAL_MODULES in their command.sh and
resolved_config.yaml). Importing it registers the same things."""

from gsm8k_rl.verl_ext.plugin import *  # noqa: F401,F403
