"""The Ollama-native dialect (``/api/chat``, ``/api/generate``): ``parse`` and ``render``."""
