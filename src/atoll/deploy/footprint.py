"""What the deployment server keeps out of its memory (budget: 50 MB RSS with 10 agents, measured by
benchmarks/bench_deploy.py): parts its libraries import by default that the supervisor never uses.

:func:`keep_light` runs once at start-up (``atoll.deploy.cli``), before those libraries are imported.
In a process that imported them already (a test run) it changes nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

#: Optional parts the supervisor's libraries import whenever they are installed, each under a
#: ``try: import ... except ImportError`` of its importer, that the supervisor never uses:
#: (the module kept out, its importer, what it costs and why it is not needed).
UNUSED_EXTRAS = (
    ("httpx._main", "httpx", "httpx's command-line tool: rich, pygments, click (~3 MB)"),
    ("h2", "httpcore", "HTTP/2 (~1 MB): the supervisor's clients speak HTTP/1.1, none asks for http2"),
    ("zstandard", "httpx", "zstd response decoding (~0.4 MB): agents and remotes do not compress"),
    ("watchfiles", "uvicorn", "uvicorn's --reload (~0.6 MB), which the supervisor does not run"),
)

#: Names of the ``uvicorn`` package that its own modules import from it (``uvicorn.lifespan``:
#: ``from uvicorn import Config``), and where each is defined.
UVICORN_HOMES = {"Config": "uvicorn.config"}


def keep_light() -> None:
    """Keep :data:`UNUSED_EXTRAS` out (a ``None`` in ``sys.modules`` makes their import fail, which
    their importers tolerate), and make the ``uvicorn`` package lazy (:func:`_lazy_uvicorn`)."""
    for module, importer, _why in UNUSED_EXTRAS:
        if importer not in sys.modules:
            sys.modules.setdefault(module, None)  # type: ignore[arg-type]
    _lazy_uvicorn()


def _lazy_uvicorn() -> None:
    """``uvicorn/__init__.py`` imports ``uvicorn.main``, its command line (click, multiprocessing,
    the reload and worker supervisors: ~1.4 MB), whichever part of uvicorn is imported. The
    supervisor uses ``uvicorn.config`` and ``uvicorn.server`` only: the package is registered without
    running its ``__init__``, which runs on first use of any other of its names (``uvicorn.run``,
    ``uvicorn.main``, ``uvicorn.__version__``), so every name still resolves as before."""
    spec = importlib.util.find_spec("uvicorn") if "uvicorn" not in sys.modules else None
    if spec is None or spec.loader is None:
        return
    loader = spec.loader
    package = importlib.util.module_from_spec(spec)
    ran = False

    def __getattr__(name: str) -> Any:
        nonlocal ran
        if name in UVICORN_HOMES:
            return getattr(importlib.import_module(UVICORN_HOMES[name]), name)
        if not ran:
            ran = True
            loader.exec_module(package)
        try:
            return package.__dict__[name]
        except KeyError:
            raise AttributeError(f"module 'uvicorn' has no attribute {name!r}") from None

    package.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules["uvicorn"] = package
