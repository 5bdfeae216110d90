"""The operator's limits over a client's generation options.

A client may choose how one reply is sampled (temperature, top_p, top_k, stop, seed, penalties,
mirostat...) and may *lower* the reply length (``num_predict`` / ``max_tokens``) and the context
window (``num_ctx``). It may not raise them above the agent's ``[llm] max_tokens`` and
``[llm] context_length`` (else the model's own context length), and it may not set the options that
change how the operator's model is loaded (GPU layers, threads, batch size, memory mapping...).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from atoll.messages import GenerationOptions

#: Ollama options that reload the model with other resources rather than shape one reply.
LOAD_OPTIONS = frozenset({
    "num_gpu", "main_gpu", "num_thread", "num_batch", "use_mmap", "use_mlock", "numa", "low_vram",
    "vocab_only", "f16_kv", "logits_all", "embedding_only", "num_gqa", "rope_frequency_base",
    "rope_frequency_scale",
})


@dataclass(frozen=True)
class OptionLimits:
    #: ``[llm] max_tokens``: the longest reply a client may ask for (None: no limit set).
    max_tokens: int | None = None
    #: ``[llm] context_length``: the largest context window a client may ask for.
    context_length: int | None = None

    def apply(self, options: GenerationOptions, model_context: int | None) -> GenerationOptions:
        """``options`` with reply length and context clamped and load-time options dropped.

        ``model_context`` (the model's own context length, when known) bounds ``num_ctx`` when the
        agent sets no ``context_length``.
        """
        return replace(options, max_tokens=_cap(options.max_tokens, self.max_tokens),
                       num_ctx=_cap(options.num_ctx, self.context_length or model_context or None),
                       extra={k: v for k, v in options.extra.items() if k not in LOAD_OPTIONS})


def _cap(value: int | None, limit: int | None) -> int | None:
    if value is None or limit is None:
        return value
    return min(value, limit)
