"""The deployment server: discover agent folders, run one agent server per agent, keep them running,
and serve a management API plus an Ollama front door for all of them."""

__all__: list[str] = []
