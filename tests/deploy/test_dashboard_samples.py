"""The metrics ring's arithmetic: Prometheus text in, per-interval rates and latency quantiles out."""

from __future__ import annotations

import math

from atoll.deploy.ui.samples import Ring, parse_metrics, quantile, read_scrape

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
