import itertools

import pytest

from pulsegate.registry.models import ModelRegistry, UnknownModel, parse_version


def clock():
    c = itertools.count(1000)
    return lambda: float(next(c))


def test_register_update_bump_and_rollback() -> None:
    applied = []
    reg = ModelRegistry(clock(), on_change=lambda v: applied.append((v.name, v.version)))
    v1 = reg.register("latency-baseline", {"threshold": 0.5, "alpha": 0.3})
    assert v1.version == "1.0.0" and v1.deployed_at is not None
    assert reg.update("latency-baseline", {"threshold": 0.5}).version == "1.0.0"  # no change
    v2 = reg.update("latency-baseline", {"threshold": 0.7}, note="tuned")
    assert v2.version == "1.1.0" and reg.active("latency-baseline") is v2
    v3 = reg.update("latency-baseline", {"new_key": 1})
    assert v3.version == "2.0.0"  # the set of keys changed: major bump
    back = reg.rollback("latency-baseline", "1.0.0")
    assert back.config == {"threshold": 0.5, "alpha": 0.3}
    assert reg.active("latency-baseline").version == "1.0.0"
    assert [v.version for v in reg.history("latency-baseline")] == ["1.0.0", "1.1.0", "2.0.0"]
    assert applied[-1] == ("latency-baseline", "1.0.0")
    # a change after a rollback gets a fresh version, never reusing one
    assert reg.update("latency-baseline", {"threshold": 0.6}).version == "2.1.0"
    with pytest.raises(UnknownModel):
        reg.rollback("latency-baseline", "9.9.9")
    with pytest.raises(UnknownModel):
        reg.active("nope")


def test_register_keeps_tuned_threshold_but_versions_configured_changes() -> None:
    reg = ModelRegistry(clock())
    reg.register("m", {"threshold": 0.5, "alpha": 0.3})
    reg.update("m", {"threshold": 0.8})
    # restart with the same configuration: the tuned threshold stays
    assert reg.register("m", {"threshold": 0.5, "alpha": 0.3}).version == "1.1.0"
    # the operator changed alpha: new version, tuned threshold kept
    v = reg.register("m", {"threshold": 0.5, "alpha": 0.2})
    assert v.version == "1.2.0" and v.config == {"threshold": 0.8, "alpha": 0.2}


def test_merge_adopts_versions_deployed_later_elsewhere() -> None:
    a = ModelRegistry(clock())
    a.register("m", {"threshold": 0.5})
    rows = a.rows()
    b = ModelRegistry(lambda: 5000.0)
    b.merge(rows)
    assert b.active("m").version == "1.0.0"
    a2 = ModelRegistry(lambda: 9000.0)
    a2.merge(rows)
    a2.update("m", {"threshold": 0.65})
    changed = b.merge(a2.rows(only_dirty=True))
    assert [v.version for v in changed] == ["1.1.0"] and b.active("m").config["threshold"] == 0.65
    # garbage rows are ignored
    assert b.merge({"x": {"name": "m", "version": "bad"}}) == []


def test_parse_version() -> None:
    assert parse_version("1.10.3") == (1, 10, 3)
    with pytest.raises(ValueError):
        parse_version("1.2")


def test_same_version_minted_twice_converges_on_the_later_deployment() -> None:
    base = ModelRegistry(lambda: 100.0)
    base.register("m", {"threshold": 0.5})
    applied = []
    a = ModelRegistry(lambda: 200.0, on_change=lambda v: applied.append(v.config["threshold"]))
    b = ModelRegistry(lambda: 300.0)
    a.merge(base.rows())
    b.merge(base.rows())
    a.update("m", {"threshold": 0.65})
    b.update("m", {"threshold": 0.7})  # the same "1.1.0", deployed later
    a.merge(b.rows(only_dirty=True))
    assert a.active("m").version == "1.1.0" and a.active("m").config["threshold"] == 0.7
    assert applied[-1] == 0.7  # the live components follow
    b.merge(a.rows())
    assert b.active("m").config["threshold"] == 0.7
