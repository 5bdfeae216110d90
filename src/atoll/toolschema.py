"""Validating tool arguments against a tool's JSON Schema without ever touching the network.

jsonschema's default registry fetches any ``$ref`` it cannot resolve locally (an ``http://`` URL in
an MCP server's tool schema would make atoll send a request wherever the schema points). Every
validator built here uses a registry that refuses retrieval: only references inside the schema
itself (``#/$defs/...``) and the JSON Schema meta-schemas resolve.
"""

from __future__ import annotations

from typing import Any

import jsonschema
from jsonschema.protocols import Validator
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable

__all__ = ["Unresolvable", "external_ref", "validator"]


def _refuse(uri: str) -> Resource[Any]:
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]


OFFLINE = Registry(retrieve=_refuse)  # type: ignore[call-arg]


def validator(schema: dict[str, Any]) -> Validator:
    """A validator for ``schema`` (its ``$schema`` dialect, else 2020-12) that never fetches a ``$ref``.

    Raises ``jsonschema.SchemaError`` for a schema that is not valid JSON Schema. Validating raises
    ``Unresolvable`` when the schema refers to anything outside itself.
    """
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema, registry=OFFLINE)


def external_ref(exc: Unresolvable) -> str:
    """The reference that could not be resolved, for an error message."""
    return str(getattr(exc, "ref", "") or exc)
