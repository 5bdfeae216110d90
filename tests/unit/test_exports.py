"""The public surface is what ``__all__`` says, and importing atoll stays light."""

from __future__ import annotations

import subprocess
import sys

import atoll
import atoll.server


def test_public_surface() -> None:
    assert atoll.__all__ == ["AgentConfig", "AtollError", "ConfigError", "__version__", "load_agent_config",
                             "load_agent_file"]
    assert atoll.server.__all__ == ["AgentRuntime", "create_app"]
    for name in atoll.__all__:
        assert hasattr(atoll, name)


def test_importing_atoll_does_not_load_the_web_stack_or_a_model_runtime() -> None:
    heavy = "('fastapi', 'llama_cpp', 'mcp', 'openai')"
    code = f"import sys, atoll; print(','.join(m for m in {heavy} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""
