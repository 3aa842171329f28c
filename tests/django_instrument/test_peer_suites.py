"""The peers' own suites, ported as labelled scenarios (see zeal_suite.py and
nplusone_suite.py for origin and license), scored at the peer's fixture sizes and with
every loop scaled to 10 parents. ``benchmarks/peer_suites.py --details`` prints the same
figures beside the peers' own."""

from __future__ import annotations

from collections.abc import Iterator

import nplusone_suite
import peer_scoring
import pytest
import zeal_suite

from pulsegate.django.instrument import install

pytestmark = pytest.mark.pulsegate(nplusone="off")

_ready = False


@pytest.fixture()
def schema() -> Iterator[None]:
    global _ready
    install()
    if not _ready:
        zeal_suite.create_schema()
        _ready = True
    yield


#: The default rule (django-zeal's) and nplusone's (``single_lazy_loads=True``).
RULES = pytest.mark.parametrize("options", [{}, {"single_lazy_loads": True}],
                                ids=["zeal's rule", "nplusone's rule"])


@RULES
@pytest.mark.parametrize("scaled", [False, True], ids=["own sizes", "scaled to 10"])
def test_zeal_suite(schema: None, scaled: bool, options: dict[str, object],
                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peer_scoring, "CAPTURE_OPTIONS", options)
    outcomes = peer_scoring.score_pulsegate(zeal_suite.SCENARIOS, scaled)
    precision, recall, problems, fine = peer_scoring.precision_recall(outcomes)
    print(f"\ndjango-zeal suite ({'scaled' if scaled else 'own sizes'}, {options}): {problems} "
          f"problems, {fine} non-problems: precision {precision:.3f} recall {recall:.3f}")
    wrong = [o for o in outcomes if o.flagged != o.problem]
    assert precision >= 0.98 and recall >= 0.98, wrong
    misnamed = [(o.name, o.relationship, o.expected) for o in outcomes
                if o.problem and o.relationship != o.expected]
    assert misnamed == []


def test_zeal_fixes_name_the_lookup_path_and_the_relation_kind(schema: None) -> None:
    by_name = {o.name: o for o in peer_scoring.score_pulsegate(zeal_suite.PROBLEMS, False)}
    assert '"author__username" to .only(' in str(by_name["deferred field"].fix)
    assert str(by_name["generic foreign key"].fix).startswith('prefetch_related("obj")')
    assert str(by_name["prefetch_related_objects per instance, generic relation"].fix).startswith(
        'prefetch_related_objects(objs, "tags") once')
    assert by_name["reverse many-to-one iterator"].fix == 'prefetch_related("posts")'


def test_batched_prefetch_is_never_an_n_plus_one(schema: None) -> None:
    """prefetch_related(...).iterator(chunk_size=n) runs one prefetch per chunk: with
    ten chunks of one, the repeat-count rule alone called that an N+1."""
    user_posts = zeal_suite.ZUser.objects.prefetch_related("posts")
    scenario = zeal_suite.Scenario(
        "chunks of one", False, None, 10, zeal_suite.users_with_posts,
        lambda: [list(u.posts.all()) for u in user_posts.iterator(chunk_size=1)])
    (outcome,) = peer_scoring.score_pulsegate([scenario], scaled=False)
    assert not outcome.flagged and outcome.other == []


@pytest.fixture()
def nplusone_schema(schema: None) -> Iterator[None]:
    global _nplusone_ready
    if not _nplusone_ready:
        nplusone_suite.create_schema()
        _nplusone_ready = True
    yield


_nplusone_ready = False


@RULES
@pytest.mark.parametrize("scaled", [False, True], ids=["own sizes", "scaled to 10"])
def test_nplusone_suite(nplusone_schema: None, scaled: bool, options: dict[str, object],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    """nplusone's N+1 and no-problem verdicts (its unused-eager-load verdicts are another
    kind). At its own size its two N+1s are one lazy load each -- not an N+1 to zeal's
    rule, the default -- and are the only difference; scaled, or with nplusone's rule
    (``single_lazy_loads=True``: by the query's form), every verdict is met."""
    monkeypatch.setattr(peer_scoring, "CAPTURE_OPTIONS", options)
    scenarios = [s for s in nplusone_suite.SCENARIOS if s.label != "unused_eager_load"]
    outcomes = peer_scoring.score_pulsegate(scenarios, scaled)
    precision, recall, problems, fine = peer_scoring.precision_recall(outcomes)
    print(f"\nnplusone Django suite ({'scaled' if scaled else 'own sizes'}, {options}): "
          f"{problems} problems, {fine} non-problems: precision {precision:.3f} recall {recall:.3f}")
    wrong = {o.name for o in outcomes if o.flagged != o.problem}
    met = scaled or bool(options)
    assert wrong == (set() if met else set(nplusone_suite.ONE_LOAD_CONFLICTS))
    assert all(o.relationship == o.expected for o in outcomes if o.flagged)
