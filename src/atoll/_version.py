__version__ = "0.1.0"

#: The Ollama version we report on ``/api/version``. Clients gate features on it
#: (VS Code Copilot requires >= 0.6.4; Open WebUI parses it as dotted integers).
OLLAMA_COMPAT_VERSION = "0.12.6"
