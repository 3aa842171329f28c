"""Which names of a kind keep a slot (pulsegate.unit_names): a name in use wins one
from a name little used; one-shot names never take a busy name's; bounded memory."""

from __future__ import annotations

import tracemalloc

from growth import assert_linear
from pulsegate import unit_names
from pulsegate.unit_names import NameSlots
from threadburst import in_threads


def slots(size: int) -> tuple[NameSlots, list[str]]:
    dropped: list[str] = []
    return NameSlots(size, dropped.append), dropped


def test_free_slots_go_to_any_name_then_a_name_seen_once_is_refused() -> None:
    kept, dropped = slots(3)
    assert [kept.use(n) for n in ("a", "b", "c", "a", "d")] == [True] * 4 + [False]
    assert len(kept) == 3 and "d" not in kept and dropped == []


def test_a_name_used_more_than_a_kept_one_takes_its_slot_when_the_hand_comes_by() -> None:
    kept, dropped = slots(8)
    for name in "abcdefgh":
        for _ in range(5 if name != "f" else 1):
            kept.use(name)
    wins = [kept.use("new") for _ in range(12)]  # the hand sees f within 8 / LOOK tries
    assert wins[-1] and "new" in kept and dropped == ["f"]
    assert sum(wins) == len(wins) - wins.index(True)  # kept from its win on


def test_a_count_decays_so_a_name_no_longer_used_gives_its_slot_up() -> None:
    kept, dropped = slots(2)  # a period: 16 uses, then every count is halved
    for _ in range(6):
        kept.use("old")
        kept.use("mid")
    assert not kept.use("new") and not kept.use("new")  # 1, 2: not above 6
    for _ in range(32):  # "new" and "mid" in use, "old" not: 6 -> 3 -> 1 -> 0
        kept.use("new")
        kept.use("mid")
    assert "new" in kept and "mid" in kept and dropped == ["old"]


def test_the_estimate_is_never_below_a_names_own_uses() -> None:
    kept, _ = slots(16)
    for i in range(16):
        kept.use(f"kept{i}")
    own: dict[str, int] = {}
    for k in range(3000):  # no halving: seen() is not a use of the kind
        name = f"x{k // 10 % 5}" if k % 10 == 0 else f"other{k}"
        own[name] = own.get(name, 0) + 1
        assert kept.seen(name) >= own[name]
    assert own["x0"] == 60


def test_a_spray_of_one_shot_names_never_takes_a_busy_names_slot() -> None:
    kept, dropped = slots(50)
    busy = [f"busy{i}" for i in range(50)]
    for name in busy:
        kept.use(name)
    for i in range(100_000):
        kept.use(f"spray{i}")
        if i % 100 == 0:  # each busy name: 4 uses in a period of 400
            for name in busy:
                kept.use(name)
    assert dropped == [] and all(name in kept for name in busy)


def test_memory_stays_bounded_whatever_the_names() -> None:
    def held(n: int) -> int:
        kept = NameSlots(200, lambda name: None)  # (a list of the dropped would grow)
        tracemalloc.start()
        for i in range(n):
            kept.use(f"https://u{i}.example/{'x' * 150}")
        # only what this test's loop and NameSlots allocated: in a full run, the
        # scheduler threads of other tests' gates allocate meanwhile too
        here = (__file__, unit_names.__file__)
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(True, name) for name in here])
        tracemalloc.stop()
        del kept
        return sum(stat.size for stat in snapshot.statistics("filename"))

    small, large = held(10_000), held(100_000)
    # 200 names of ~180 characters (~46 KB), the 32 KiB sketch, a dict and a list:
    # the same after 10 000 names as after 100 000 (kept whole: over 20 MB)
    assert large < 130_000 and large < 1.3 * small


def test_each_use_costs_the_same_however_many_names_came_before() -> None:
    def run(names: list[str]) -> None:
        kept, _ = slots(200)
        for name in names:
            kept.use(name)

    assert_linear(run, lambda n: [f"u{i}.example" for i in range(n)])


def test_uses_from_many_threads_keep_every_count_with_its_slot() -> None:
    """Jobs and outbound calls name their units from many threads: a name winning a
    slot while another thread counts the victim must neither raise nor leave a count
    without a slot (a name never evicted again, its model kept past the bound)."""
    errors: list[BaseException] = []
    kept, _ = slots(20)

    def work(t: int) -> None:
        try:
            for i in range(20_000):
                kept.use(f"busy{i % 25}")
                kept.use(f"t{t}-{i}")
        except BaseException as exc:  # (collected: a thread's error would be lost)
            errors.append(exc)

    in_threads(work)
    assert errors == []
    assert set(kept.counts) == set(kept.slots) and len(kept.slots) == 20
