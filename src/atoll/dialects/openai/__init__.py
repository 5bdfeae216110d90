"""The OpenAI-compatible dialect (``/v1``): ``wire`` (bodies), ``parse`` and ``render``."""
