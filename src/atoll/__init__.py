"""atoll: serve tool-using LLM agents over an Ollama-compatible REST API."""

from atoll._version import __version__

__all__ = ["__version__"]
