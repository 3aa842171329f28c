from __future__ import annotations

import pytest

from pulsegate import Config, ConfigError


@pytest.mark.parametrize(("key", "value", "message"), [
    ("rate_limit", "100", "a rate like '100/minute'"),
    ("rate_limit", "0/minute", "positive count"),
    ("rate_limit_burst", 0, "a number >= 1 and <= 1_000_000_000, or none"),
    ("rate_limit_routes", {"/login": "5/fortnight"}, "a rate like '100/minute'"),
    ("rate_limit_routes", {"/login": 5}, "route template -> 'N/unit'"),
    ("rate_limit_routes", {"/login": "5/minute;-1"}, "a number >= 1"),
    ("rate_limit_costs", {"/export": 0}, "a number > 0"),
    ("rate_limit_storage", "mysql://x", "memory://, redis://host:port/db"),
    ("client_key", "cookie", "'ip', 'header:<name>' or a callable"),
    ("client_key", "header:", "'ip', 'header:<name>' or a callable"),
    ("trusted_proxies", ["10.0.0.0/33"], "a list of IP networks (CIDR)"),
    ("trusted_multiplier", 0.5, "a number >= 1"),
    ("suspicious_multiplier", 0, "a number > 0 and <= 1"),
    ("suspicion_threshold", 1.5, "a number > 0 and <= 1"),
    ("max_clients", 0, "an integer >= 1"),
    ("breaker_failures", 0, "an integer >= 1"),
    ("breaker_recovery", 0, "a number > 0"),
    ("min_concurrency", 0, "an integer >= 1"),
    ("max_concurrency", 2.5, "an integer >= 1"),
    ("initial_concurrency", 0, "an integer >= 1 and <= 100_000, or none"),
    ("max_queue", -1, "an integer >= 0"),
    ("max_queue_wait", -0.1, "a number >= 0"),
    ("priority_rules", {"/a": "urgent"}, "high | normal | low"),
    ("priority_rules", ["/a"], "route template or '/prefix*'"),
    ("priority_header", 5, "an HTTP header name, or none"),
    ("allocator_interval", 0, "a number > 0"),
    ("auto_target_latency", "maybe", "true or false"),
    ("q_alpha", 0, "a number > 0 and <= 1"),
    ("q_gamma", 1.1, "a number >= 0 and <= 1"),
    ("q_epsilon", 2, "a number >= 0 and <= 1"),
    ("q_epsilon_decay", 0, "a number > 0 and <= 1"),
])
def test_control_options_fail_clearly(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        Config(**{key: value})
    assert err.value.key.startswith(key)
    assert message in str(err.value)


def test_min_above_max_concurrency() -> None:
    with pytest.raises(ConfigError, match=r"min_concurrency=300; allowed: <= max_concurrency \(256\)"):
        Config(min_concurrency=300)


def test_control_options_from_env() -> None:
    c = Config.from_env({
        "PULSEGATE_RATE_LIMIT": "10/second", "PULSEGATE_RATE_LIMIT_ROUTES": '{"/login": "5/minute;2"}',
        "PULSEGATE_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.0.0/16",
        "PULSEGATE_PRIORITY_RULES": '{"/reports*": "low", "GET /health/deep": "high"}',
        "PULSEGATE_CLIENT_KEY": "header:X-API-Key", "PULSEGATE_MAX_QUEUE_WAIT": "0.2",
    })
    assert c.rate_limit == "10/second" and c.rate_limit_routes == {"/login": "5/minute;2"}
    assert c.trusted_proxies == ("10.0.0.0/8", "192.168.0.0/16")
    assert c.priority_rules["/reports*"] == "low" and c.client_key == "header:x-api-key"
    assert c.max_queue_wait == 0.2
