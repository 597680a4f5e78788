"""VERL's FSDP engines, registered for the devices this backend adds (`EngineRegistry`).

`EngineRegistry` picks a training engine by (model type, strategy, device[, vendor]); VERL 0.9.1
registers its FSDP engines for "cuda" and "npu" only. Registering the same classes for "cpu"
lets the CPU platform train with them (they are device-agnostic through `get_device_name()`).

The critic needs one change: VERL loads value models with a hard-coded
`attn_implementation="flash_attention_2"` (`verl.utils.model.load_valuehead_model`), which fails
wherever the flash-attn package is missing (always on CPU; on GPU it has no wheel). `ValueEngine`
builds the critic through the same code path VERL uses for the actor, which honours
`critic.model.override_config.attn_implementation`, with a token-classification head of one
label, exactly the model VERL's loader would build. With flash_attention_2 configured it defers
to VERL unchanged.

VERL wraps a forward-only model (the reference policy) with FSDP's CPU offload, always, whatever
`ref.fsdp_config.param_offload` says (`_build_fsdp_module`). On CPU that offload needs an
accelerator ("Cannot access accelerator device") and does nothing useful, so the CPU engines wrap
it without offload. On a GPU it copies all reference weights host -> GPU for every micro-batch of
every reference pass (fp32 Qwen3-1.7B: 6.9 GB each time). `LanguageEngine` honours
`ref.fsdp_config.param_offload`: true keeps VERL's behaviour, false keeps the reference on the GPU
(the launcher decides from the GPU memory, layout.layout_overrides).
"""

from __future__ import annotations

from verl.utils.device import get_device_name
from verl.workers.engine.base import EngineRegistry
from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead, FSDPEngineWithValueHead

from gsm8k_rl.verl_ext import batch_order


def _token_classification_arch(architectures: list[str] | None) -> list[str]:
    """["Qwen3ForCausalLM"] -> ["Qwen3ForTokenClassification"] (what VERL's value loader builds).

    >>> _token_classification_arch(["Qwen3ForCausalLM"])
    ['Qwen3ForTokenClassification']
    """
    if not architectures:
        raise ValueError("the critic's config.json has no `architectures`; cannot pick a value-head class")
    head = architectures[0]
    for suffix in ("ForCausalLM", "ForConditionalGeneration", "ForTokenClassification"):
        if head.endswith(suffix):
            return [head[: -len(suffix)] + "ForTokenClassification"]
    raise ValueError(f"cannot derive a token-classification class from architecture {head!r}")


class ValueEngine(FSDPEngineWithValueHead):
    """VERL's FSDP critic engine, loading the value model with the configured attention.

    It also records the batch order it sees (gsm8k_rl.verl_ext.batch_order): the values pass gets the
    whole batch in the trainer's order, each critic update one mini-batch.
    """

    def infer_batch(self, data, loss_function=None):
        batch_order.record("values", data)
        return super().infer_batch(data, loss_function)

    def train_batch(self, data, loss_function):
        batch_order.record("update_critic", data)
        return super().train_batch(data, loss_function)

    def _build_module(self):
        cfg = self.model_config
        hf = cfg.hf_config
        if cfg.model_type != "value_model" or getattr(hf, "_attn_implementation", None) == "flash_attention_2":
            return super()._build_module()
        # The settings VERL's value branch applies, then its language-model branch with a
        # token-classification auto class (chosen from `architectures`).
        hf.num_labels = 1
        hf.classifier_dropout = 0.0
        hf.hidden_dropout = "0"
        hf.summary_dropout_prob = 0.0
        saved = cfg.model_type, hf.architectures
        cfg.model_type, hf.architectures = "language_model", _token_classification_arch(hf.architectures)
        try:
            return super()._build_module()
        finally:
            cfg.model_type, hf.architectures = saved


class _HostResidentMixin:
    """Wrap forward-only models without FSDP CPU offload when the "device" is the host itself, or
    when the config asks for no parameter offload."""

    def _build_fsdp_module(self, module):
        resident = get_device_name() == "cpu" or not self.engine_config.param_offload
        if not resident or not self.engine_config.forward_only:
            return super()._build_fsdp_module(module)
        # forward_only only selects the offload policy inside _build_fsdp_module (VERL 0.9.1)
        self.engine_config.forward_only = False
        try:
            return super()._build_fsdp_module(module)
        finally:
            self.engine_config.forward_only = True


class LanguageEngine(_HostResidentMixin, FSDPEngineWithLMHead):
    """VERL's FSDP actor/reference engine; the reference's offload follows its param_offload."""


class CPULanguageEngine(LanguageEngine):
    """VERL's FSDP actor/reference engine on the host CPU."""


class CPUValueEngine(_HostResidentMixin, ValueEngine):
    """VERL's FSDP critic engine on the host CPU."""


def register(device: str) -> None:
    """Register the FSDP engines for `device` ("cpu"), or on CUDA the critic fix for attention
    other than flash_attention_2 and the reference-offload switch."""
    if device == "cpu":
        EngineRegistry.register(model_type="language_model", backend=["fsdp", "fsdp2"], device="cpu")(
            CPULanguageEngine
        )
        EngineRegistry.register(model_type="value_model", backend=["fsdp", "fsdp2"], device="cpu")(CPUValueEngine)
    elif device == "cuda":
        # A vendor key outranks VERL's device-only "cuda" entry; ValueEngine behaves exactly like
        # VERL's engine unless a non-flash attention is configured.
        EngineRegistry.register(model_type="value_model", backend=["fsdp", "fsdp2"], device="cuda", vendor="nvidia")(
            ValueEngine
        )
        EngineRegistry.register(model_type="language_model", backend=["fsdp", "fsdp2"], device="cuda",
                                vendor="nvidia")(LanguageEngine)
