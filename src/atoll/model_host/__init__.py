"""The model host: ONE process that loads a GGUF model and serves it to every agent of a deployment
server that uses ``provider = "local"``, instead of each agent loading its own copy.

- ``app``: the loopback HTTP API, a subset of Ollama's (``/api/chat``, ``/api/embed``, ``/api/show``,
  ``/api/version``, ``/health``), so an agent reaches it with the ``ollama`` client
  (``atoll.providers.model_host``); every call but ``/health`` and ``/api/version`` needs a signed
  token naming the calling agent (``atoll.httpkit.bearer.signed_token``).
- ``fair``: one generation at a time, handed round-robin between agents.
- ``serve``: ``atoll model-host``, the process the deployment server starts (``atoll.deploy.model_hosts``).
"""
