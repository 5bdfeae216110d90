"""One module per ``atoll`` mode, each with ``register(modes)`` (see :mod:`atoll.cli`).

These modules stay light: they declare arguments and import the mode's implementation only
when it runs.
"""
