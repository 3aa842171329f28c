import pytest

from pulsegate import Config, ConfigError


def test_registry_option_checks() -> None:
    c = Config(tuning_grid="0.4, 0.8, 0.1", alert_webhook="https://hooks.example/x",
               accuracy_targets='{"n1-detector": 0.95}')
    assert c.tuning_grid == (0.4, 0.8, 0.1)
    assert c.accuracy_targets["n1-detector"] == 0.95
    with pytest.raises(ConfigError, match="http:// or https://"):
        Config(alert_webhook="file:///etc/passwd")
    with pytest.raises(ConfigError, match="low, high, step"):
        Config(tuning_grid=(0.9, 0.5, 0.05))
    with pytest.raises(ConfigError, match="low, high, step"):
        Config(tuning_grid="a,b,c")
    with pytest.raises(ConfigError, match="accuracy_targets"):
        Config(accuracy_targets={"m": 2.0})
    with pytest.raises(ConfigError, match="a callable"):
        Config(alert_callback="print")
    with pytest.raises(ConfigError, match="snapshot_interval"):
        Config(snapshot_interval=0)


def test_registry_options_from_the_environment() -> None:
    c = Config.from_env({"PULSEGATE_STATE_REDIS_URL": "redis://r:6379/0",
                         "PULSEGATE_AUTO_TUNING": "off", "PULSEGATE_TUNING_MIN_LABELS": "80"})
    assert (c.state_redis_url, c.auto_tuning, c.tuning_min_labels) == ("redis://r:6379/0",
                                                                       False, 80)
