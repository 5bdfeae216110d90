"""A bounded schemathesis run over the whole HTTP API, from the server's own OpenAPI description:
whatever it is sent, valid or not, the server answers without a 5xx (bad input is a 4xx).

The operations are driven from one test with Hypothesis directly: schemathesis' lazy pytest
loader (``from_fixture``) does not work with pytest 9, and the schema only exists once the server runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.security.conftest import KEY_A, bearer, start
from tests.support.servers import AgentServer

EXAMPLES_PER_OPERATION = 40


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    folder = tmp_path_factory.mktemp("fuzzed")
    yield from start(folder, f'api_keys = ["{KEY_A}"]\nsession_store = "memory"\nrequest_timeout = 20\n')


def _aim_at_the_agent(case: schemathesis.Case) -> None:
    """Most bodies name this agent, so generation itself is fuzzed and not only "model not found"."""
    if isinstance(case.body, dict) and not isinstance(case.body.get("model", ""), bool | int | float | list | dict):
        case.body["model"] = "echo"


def _fuzz(operation: Any, url: str) -> None:
    strategy = st.one_of(operation.as_strategy(schemathesis.GenerationMode.POSITIVE),
                         operation.as_strategy(schemathesis.GenerationMode.NEGATIVE))

    @given(case=strategy)
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        _aim_at_the_agent(case)
        response = case.call(base_url=url, headers=bearer(KEY_A), timeout=30)
        case.validate_response(response, checks=[not_a_server_error])

    run()


def test_no_server_errors(fuzzed_server: AgentServer) -> None:
    schema = schemathesis.openapi.from_url(fuzzed_server.url + "/atoll/openapi.json", headers=bearer(KEY_A))
    operations = [result.ok() for result in schema.get_all_operations()]
    described = {(op.method.upper(), op.path) for op in operations}
    assert {("POST", "/api/chat"), ("POST", "/v1/chat/completions"), ("GET", "/api/tags")} <= described
    assert all(op.body for op in operations if (op.method.upper(), op.path) == ("POST", "/api/chat"))
    for operation in operations:
        _fuzz(operation, fuzzed_server.url)
