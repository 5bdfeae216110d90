"""atoll: serve tool-using LLM agents over an Ollama-compatible REST API.

The top-level package stays light (no web framework, no model runtime) because the deployment
server imports it and its memory use is budgeted; the server lives in :mod:`atoll.server`.
"""

from atoll._version import __version__
from atoll.config import AgentConfig, load_agent_config, load_agent_file
from atoll.errors import AtollError, ConfigError

__all__ = ["AgentConfig", "AtollError", "ConfigError", "__version__", "load_agent_config", "load_agent_file"]
