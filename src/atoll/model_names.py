"""Model-name matching, shared by agent servers and the deployment server's front door.

A module of its own, with no imports: the supervisor's memory is budgeted, and pulling in the
pydantic wire models just for this would cost it most of a megabyte.
"""


def model_key(name: str) -> str:
    """How Ollama compares model names: case-insensitive, and ``foo`` is ``foo:latest``."""
    name = name.strip().lower()
    return name[: -len(":latest")] if name.endswith(":latest") else name
