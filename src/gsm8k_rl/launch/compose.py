"""The PPO recipe as a VERL Hydra config: composition, and the check of every override.

`configs/` (= src/gsm8k_rl/configs) holds the named configs; each is VERL's `ppo_trainer.yaml`
plus `_recipe.yaml` (the PPO hyperparameters) plus its own differences. `compose_config` builds
exactly the config `verl.trainer.main_ppo` would run with, and refuses overrides VERL would ignore
or trip over later (`check_overrides`). The hardware layout is layout.py's, the checks of a whole
config validate.py's. Used by `gsm8k-rl train`, `gsm8k-rl doctor` and the tests.
"""

from __future__ import annotations

import dataclasses
import functools
from importlib import resources
from pathlib import Path
from typing import Any

from gsm8k_rl import UserError

CONFIG_DIR = Path(str(resources.files("gsm8k_rl") / "configs"))
DEFAULT_CONFIG = "ppo"
REWARD_FILE = Path(str(resources.files("gsm8k_rl") / "task" / "reward.py"))


def config_names() -> list[str]:
    """The named configs (`--config NAME`): every primary YAML in configs/."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if not p.stem.startswith("_"))


def compose_config(name: str = DEFAULT_CONFIG, overrides: list[str] | tuple[str, ...] = ()) -> Any:
    """Hydra-compose a named config with overrides, as `main_ppo --config-path/--config-name` would.

    A misspelled key, a key added with '+'/'++' that VERL's schema does not have, or a value of the
    wrong type raises UserError naming the override (check_overrides).
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if name not in config_names():
        raise UserError(f"unknown config {name!r}; choose one of {config_names()} (files in {CONFIG_DIR})")
    if overrides:
        problems = check_overrides(name, overrides)
        if problems:
            raise UserError("\n".join(problems) if len(problems) == 1 else
                            "bad overrides:\n  - " + "\n  - ".join(problems))
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            return compose(config_name=name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        msg = str(exc).splitlines()[0]
        raise UserError(
            f"config {name!r} with overrides {list(overrides)} does not compose: {msg}\n"
            "  (an existing key must be spelled as in VERL's _generated_ppo_trainer.yaml; '+key=value' adds "
            "one, '++key=value' adds or overrides)"
        ) from exc


@functools.cache
def _defaults(name: str) -> dict:
    """The named config without overrides (`cfg`, and `raw`: plain unresolved containers) and VERL's
    own ppo_trainer.yaml (`verl`): the schema the overrides are checked against."""
    from hydra import compose, initialize_config_dir, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose(config_name=name)
    with initialize_config_module(config_module="verl.trainer.config", version_base=None):
        verl = compose(config_name="ppo_trainer")
    return {"raw": OmegaConf.to_container(cfg, resolve=False), "cfg": cfg,
            "verl": OmegaConf.to_container(verl, resolve=False)}


# Nodes whose keys are free though VERL's YAML does not say so (no `{}` there, no dict-typed field):
# what VERL passes whole to another library or reads with .get() as keyword arguments.
FREE_FORM = {
    "ray_kwargs.ray_init": "verl/trainer/main_ppo.py run_ppo: ray.init(**ray_init_kwargs), runtime_env included",
    "reward.reward_kwargs": "verl/experimental/reward_loop: config.reward.get('reward_kwargs', {}) -> the reward "
                            "manager",
    "reward.custom_reward_function.reward_kwargs":
        "verl/trainer/ppo/reward.py get_custom_reward_fn: reward_fn_config.get('reward_kwargs', {}) -> compute_score",
}


def _dataclass_of(node: Any) -> type | None:
    """The VERL dataclass a config node is converted to (its `_target_`), if any."""
    import importlib

    target = node.get("_target_") if isinstance(node, dict) else None
    if not isinstance(target, str) or "." not in target:
        return None
    module, _, attr = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None
    return cls if dataclasses.is_dataclass(cls) else None


def _field_types(cls: type) -> dict[str, Any]:
    import typing

    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve here: the names are still the schema's
        return {f.name: None for f in dataclasses.fields(cls)}


def _unoptional(tp: Any) -> Any:
    """X for Optional[X] (or X | None); `tp` otherwise."""
    import types
    import typing

    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return tp


def _free_form(tp: Any) -> bool:
    """A field typed as a dict (or Any): VERL hands its content on without a schema."""
    import collections.abc
    import typing

    return tp is typing.Any or tp is dict or typing.get_origin(tp) in (dict, collections.abc.Mapping)


@dataclasses.dataclass
class _Found:
    exists: bool  # the key is in the config (or its schema) already
    open: bool = False  # it lies under a node whose keys are free (a kwargs dict)
    parent: str = ""  # where it was not found
    missing: str = ""  # the part that was not found there
    known: tuple[str, ...] = ()  # the keys that node has
    annotation: Any = None  # the key's type in VERL's dataclass, when it has one


def find_key(raw: dict, key: str, verl: dict | None = None) -> _Found:
    """Where `key` (dotted) stands in a composed config (`raw`), VERL's own config (`verl`) and VERL's
    dataclass schemas.

    A key is known when the YAML has it or the VERL dataclass of its node (`_target_`) declares the
    field. Under a free-form node any key is: a dict-typed dataclass field, a mapping that is empty in
    VERL's config and no dataclass describes (its `*_kwargs: {}`, `override_config: {}`), FREE_FORM."""
    parts = key.split(".")
    node: Any = raw
    vnode: Any = verl if verl is not None else raw
    annotation: Any = None
    for i, part in enumerate(parts):
        where = ".".join(parts[:i])
        cls = _dataclass_of(node) or (annotation if dataclasses.is_dataclass(annotation) else None)
        if where in FREE_FORM or _free_form(annotation):
            return _Found(True, open=True)
        if isinstance(node, str) and "${" in node:
            return _Found(True, open=True)  # an interpolation: its target is checked where it points
        if cls is None and any(isinstance(n, dict) and not n for n in (node, vnode)):
            return _Found(True, open=True)
        hints = _field_types(cls) if cls else {}
        keys = (set(node) if isinstance(node, dict) else set()) | set(hints)
        keys.discard("_target_")
        keys |= {k.rsplit(".", 1)[1] for k in FREE_FORM if k.rsplit(".", 1)[0] == where}
        if part not in keys:
            return _Found(False, parent=where, missing=part, known=tuple(sorted(keys)))
        annotation = _unoptional(hints.get(part))
        node = node.get(part) if isinstance(node, dict) else None
        vnode = vnode.get(part) if isinstance(vnode, dict) else None
    return _Found(True, annotation=annotation)


_EXPECTED = {bool: "true or false", int: "an integer", float: "a number"}


def _wrong_type(value: Any, expected: type) -> bool:
    """Whether a parsed override value cannot be a value of `expected` (bool, int or float).

    >>> _wrong_type("abc", int), _wrong_type(12, int), _wrong_type(2.5, int), _wrong_type(1, float)
    (True, False, True, False)
    >>> _wrong_type("no", bool), _wrong_type(None, int), _wrong_type("${data.x}", int)
    (True, False, False)
    """
    if value is None or (isinstance(value, str) and "${" in value):
        return False  # null, or an interpolation resolved later
    if expected is bool:
        return isinstance(value, str)  # "no" / "off" are strings to Hydra, and a non-empty string is true
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True
    return expected is int and isinstance(value, float) and not value.is_integer()


def check_overrides(name: str, overrides: list[str] | tuple[str, ...]) -> list[str]:
    """Overrides Hydra would take but VERL would ignore or trip over later, one problem each.

    - a key added with '+' or '++' that neither the config nor VERL's dataclass schema has, outside a
      free-form dict: Hydra adds it, nothing reads it (the run silently uses the default);
    - a value of the wrong type for a boolean, integer or float key (`data.train_batch_size=abc`):
      Hydra stores the string, and VERL fails on it later, far from the override.
    """
    import difflib

    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException:
        return []  # compose reports the syntax error with Hydra's own message
    defaults = _defaults(name)
    problems = []
    for text, o in zip(overrides, parsed, strict=True):
        key = o.key_or_group
        if o.is_delete() or "/" in key or "@" in key or key.startswith("hydra.") or o.package:
            continue
        found = find_key(defaults["raw"], key, defaults["verl"])
        if not found.exists:
            close = difflib.get_close_matches(found.missing, found.known, n=1)
            hint = f"; did you mean {'.'.join(filter(None, [found.parent, close[0]]))}?" if close else ""
            why = ("Hydra would add it and nothing would read it" if o.is_add() or o.is_force_add() else
                   "'+'/'++' add a key, which only VERL's free-form dicts take")
            problems.append(f"{text}: {found.parent or 'the config'} has no key {found.missing!r} in VERL's "
                            f"config or schema{hint} ({why})")
            continue
        if found.open:
            continue
        try:
            default = OmegaConf.select(defaults["cfg"], key, default=None)
        except Exception:  # an interpolation that only resolves with the launcher's overrides
            default = None
        # VERL's dataclass says the type. A plain YAML key (data.*, trainer.*) has its default's, except
        # that an integer default says "a number" (trainer.esi_redundant_time: 0 takes 0.5)
        if found.annotation in _EXPECTED:
            expected = found.annotation
        else:
            expected = float if type(default) is int else type(default)
        if expected in _EXPECTED and not isinstance(o.value(), (list, dict)) and _wrong_type(o.value(), expected):
            shown = f" (the default is {default})" if default is not None else ""
            problems.append(f"{key}={o.value()!r}: expected {_EXPECTED[expected]}{shown}")
    return problems
