"""The dashboard's pure parts: the metrics ring's arithmetic (Prometheus text in, per-interval rates
and latency quantiles out), the redaction of agent configurations and the cookie's origin rule."""

from __future__ import annotations

import math

from atoll.deploy.ui.api import redact
from atoll.deploy.ui.samples import Ring, parse_metrics, quantile, read_scrape
from atoll.deploy.ui.signin import same_origin_problem

SCRAPE = '''# HELP atoll_http_requests_total HTTP requests answered.
atoll_http_requests_total{method="POST",route="/api/chat",status="200"} 7.0
atoll_http_requests_total{method="GET",route="/health",status="200"} 100.0
atoll_http_request_duration_seconds_bucket{le="0.1",method="POST",route="/api/chat"} 2.0
atoll_http_request_duration_seconds_bucket{le="1.0",method="POST",route="/api/chat"} 6.0
atoll_http_request_duration_seconds_bucket{le="+Inf",method="POST",route="/api/chat"} 7.0
atoll_http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/health"} 100.0
atoll_tokens_total{direction="in"} 30.0
atoll_tokens_total{direction="out"} 12.0
atoll_mcp_server_state{server="time",state="connected"} 1.0
atoll_mcp_server_state{server="slow \\"one\\"",state="failed"} 1.0
atoll_mcp_server_state{server="slow \\"one\\"",state="connected"} 0.0
atoll_agent_info{agent="a",model="qwen3:4b",provider="ollama",version="1"} 1.0
'''


def test_a_scrape_gives_traffic_without_probes_tokens_and_mcp_servers() -> None:
    counters, live = read_scrape(parse_metrics(SCRAPE))
    assert counters.requests == 7 and counters.tokens == 42
    assert counters.buckets == {0.1: 2.0, 1.0: 6.0, math.inf: 7.0}
    assert (live.provider, live.model, live.mcp_connected, live.mcp_total) == ("ollama", "qwen3:4b", 1, 2)


def test_quantiles_interpolate_within_buckets() -> None:
    buckets = {0.1: 2.0, 1.0: 6.0, math.inf: 8.0}
    assert quantile(buckets, 0.25) == 0.1
    assert math.isclose(quantile(buckets, 0.5), 0.1 + 0.9 * (4 - 2) / (6 - 2))
    assert quantile(buckets, 0.95) == 1.0  # in the open-ended bucket: its lower bound
    assert math.isnan(quantile({0.1: 0.0, math.inf: 0.0}, 0.5))


def test_the_ring_keeps_the_newest_samples_in_order() -> None:
    ring = Ring(3)
    for t in range(5):
        ring.append(t=t, dt=1, requests=t, tokens=0, p50=math.nan, p95=math.nan)
    assert len(ring) == 3 and [row["t"] for row in ring.rows()] == [2, 3, 4]


def test_redaction_hides_secrets_by_key_and_passwords_in_urls() -> None:
    config = {"llm": {"base_url": "https://bob:s3cret@api.example/v1", "api_key": "sk-1", "model": "m"},
              "server": {"api_keys": ["k1"], "rate_limit_per_minute": 60},
              "mcp_servers": {"gh": {"env": {"GITHUB_TOKEN": "ghp"}, "headers": {"X": "y"}, "url": "http://h:1/x",
                                     "args": ["--token-file", "/etc/t"]}},
              "sub_agents": {"c": {"auth_token": None}}}
    shown = redact(config)
    assert shown["llm"] == {"base_url": "https://bob:[redacted]@api.example/v1", "api_key": "[redacted]", "model": "m"}
    assert shown["server"] == {"api_keys": "[redacted]", "rate_limit_per_minute": 60}
    assert shown["mcp_servers"]["gh"]["env"] == shown["mcp_servers"]["gh"]["headers"] == "[redacted]"
    assert shown["mcp_servers"]["gh"]["url"] == "http://h:1/x"
    assert shown["sub_agents"]["c"]["auth_token"] is None  # nothing set, nothing to hide
    assert "s3cret" not in str(shown) and "ghp" not in str(shown) and "sk-1" not in str(shown)


def scope(**headers: str) -> dict[str, object]:
    return {"type": "http", "scheme": "http",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}


def test_the_cookie_counts_only_from_the_dashboards_exact_origin() -> None:
    host = "127.0.0.1:8080"
    assert same_origin_problem(scope(Host=host, Origin="http://127.0.0.1:8080")) is None
    assert same_origin_problem(scope(Host=host, Referer="http://127.0.0.1:8080/ui#/agent/a")) is None
    assert same_origin_problem(scope(Host="LocalHost:8080", Origin="http://localhost:8080")) is None
    for refused in ({"Origin": "http://127.0.0.1:8081"}, {"Origin": "https://127.0.0.1:8080"},
                    {"Origin": "http://localhost:8080"}, {"Origin": "null"}, {},
                    {"Referer": "http://127.0.0.1:9999/ui"}, {"Origin": "http://127.0.0.1:8080.evil.example"},
                    {"Referer": "not a url"}):
        assert same_origin_problem(scope(Host=host, **refused)) is not None, refused
    assert same_origin_problem(scope(Origin="http://127.0.0.1:8080")) is not None  # no Host: no own origin
