"""Environment variables that VERL's own processes must see, set where Ray passes them on.

VERL runs its trainer, workers and loggers as Ray actors. Ray hands the launching process's
environment to them only when it starts Ray itself; on a cluster started with `ray start`
(RAY_ADDRESS) the actors get the runtime environment alone. So every variable VERL's processes need
(the plugin module, the CPU platform, where the loggers write) is set twice: in the driver's
environment, and as a Hydra override adding it to VERL's `ray_kwargs.ray_init.runtime_env`.
"""

from __future__ import annotations

RUNTIME_ENV_VARS = "ray_kwargs.ray_init.runtime_env.env_vars"


def runtime_env_override(key: str, value: str) -> str:
    """The Hydra override adding one variable to VERL's Ray runtime env (quoted: Ray wants strings).

    >>> runtime_env_override("VERL_PLATFORM", "cpu")
    "++ray_kwargs.ray_init.runtime_env.env_vars.VERL_PLATFORM='cpu'"
    """
    return f"++{RUNTIME_ENV_VARS}.{key}='{value}'"


def with_ray_env(env: dict[str, str], overrides: list[str], **variables: str) -> tuple[dict[str, str], list[str]]:
    """`env` and `overrides` with each variable set in both: the driver's environment and Ray's.

    >>> with_ray_env({}, [], VERL_PLATFORM="cpu")
    ({'VERL_PLATFORM': 'cpu'}, ["++ray_kwargs.ray_init.runtime_env.env_vars.VERL_PLATFORM='cpu'"])
    """
    return {**env, **variables}, [*overrides, *(runtime_env_override(k, v) for k, v in variables.items())]
