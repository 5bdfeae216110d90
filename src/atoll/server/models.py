"""How the agent presents itself as an Ollama "model" (``/api/tags``, ``/api/ps``, ``/api/show``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from atoll.server.runtime import AgentRuntime
from atoll.wire import ModelDetails, ModelEntry, ShowResponse, timestamp

#: Agents stay loaded: ``/api/ps`` reports an expiry far in the future, as Ollama does for keep_alive < 0.
_FOREVER = timedelta(days=365 * 100)


def details(runtime: AgentRuntime) -> ModelDetails:
    profile = runtime.provider.profile
    return ModelDetails(
        format=profile.format, family=profile.family, families=[profile.family],
        parameter_size=profile.parameter_size, quantization_level=profile.quantization_level,
        context_length=profile.context_length, embedding_length=profile.embedding_length,
    )


def model_entry(runtime: AgentRuntime, *, loaded: bool = False) -> ModelEntry:
    entry = ModelEntry(
        name=runtime.model_tag, model=runtime.model_tag, modified_at=timestamp(runtime.modified_at),
        size=0, digest=runtime.digest, details=details(runtime), capabilities=runtime.capabilities,
    )
    if loaded:
        entry.capabilities = None
        entry.expires_at = timestamp(datetime.now(UTC) + _FOREVER)
        entry.size_vram = 0
        entry.context_length = runtime.provider.profile.context_length or 0
    return entry


def show_response(runtime: AgentRuntime) -> ShowResponse:
    profile = runtime.provider.profile
    llm = runtime.config.llm
    arch = profile.family or "agent"
    context = profile.context_length or llm.context_length or 4096
    info: dict[str, object] = {
        "general.architecture": arch,
        "general.basename": runtime.name,
        "general.description": runtime.config.agent.description,
        "general.version": runtime.config.agent.version,
        f"{arch}.context_length": context,
        "atoll.provider": runtime.provider.name,
        "atoll.model": runtime.provider.model,
        "atoll.tools": [spec.name for spec in runtime.toolbox.specs()],
    }
    if profile.embedding_length:
        info[f"{arch}.embedding_length"] = profile.embedding_length
    parameters = [f"num_ctx {context}"]
    if llm.temperature is not None:
        parameters.append(f"temperature {llm.temperature}")
    if llm.top_p is not None:
        parameters.append(f"top_p {llm.top_p}")
    # LiteLLM marks a model as tool-capable when "tools" occurs in the template.
    template = "{{ .System }}{{ .Prompt }}{{ if .Tools }}{{ .Tools }}{{ end }}" if "tools" in runtime.capabilities \
        else "{{ .System }}{{ .Prompt }}"
    return ShowResponse(
        license="", modelfile=f"# atoll agent {runtime.name} {runtime.config.agent.version}\n"
        f"# provider {runtime.provider.name}, model {runtime.provider.model}\n",
        parameters="\n".join(parameters), template=template, system=llm.system_prompt, details=details(runtime),
        model_info=info, capabilities=runtime.capabilities, modified_at=timestamp(runtime.modified_at),
    )
