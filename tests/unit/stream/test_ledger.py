"""The acknowledgement ledger releases each partition's finished messages in offset order only."""

import random

import pytest

from icecube_stream.stream.ledger import AckLedger

pytestmark = pytest.mark.unit


def test_a_later_message_waits_for_the_earlier_one() -> None:
    ledger = AckLedger()
    for offset in (10, 11, 12):
        ledger.taken(f"p0@{offset}", 0, offset)
    assert ledger.finish(["p0@11"]) == []  # 10 still in a step: 11 must not be acked
    assert ledger.held == 1
    assert ledger.finish(["p0@10"]) == ["p0@10", "p0@11"]
    assert ledger.finish(["p0@12"]) == ["p0@12"]
    assert ledger.held == 0


def test_partitions_are_independent() -> None:
    ledger = AckLedger()
    ledger.taken("a", 0, 5)
    ledger.taken("b", 1, 7)
    ledger.taken("c", 0, 6)
    assert ledger.finish(["c", "b"]) == ["b"]
    assert ledger.finish(["a"]) == ["a", "c"]


def test_random_completion_order_never_releases_past_an_unfinished_message() -> None:
    rng = random.Random(7)
    ledger = AckLedger()
    offsets = {p: sorted(rng.sample(range(1000), 60)) for p in range(3)}  # with gaps
    for p, values in offsets.items():
        for offset in values:
            ledger.taken((p, offset), p, offset)
    order = [(p, o) for p, values in offsets.items() for o in values]
    rng.shuffle(order)
    done: set[tuple[int, int]] = set()
    released: list[tuple[int, int]] = []
    for start in range(0, len(order), 7):
        chunk = order[start : start + 7]
        done.update(chunk)
        for token in ledger.finish(chunk):
            p, offset = token
            assert all((p, earlier) in done for earlier in offsets[p] if earlier < offset)
            released.append(token)
    assert sorted(released) == sorted(order)
    for p, values in offsets.items():
        assert [o for q, o in released if q == p] == values


def test_revoked_partitions_are_forgotten_and_out_of_order_registration_refused() -> None:
    ledger = AckLedger()
    ledger.taken("x", 2, 1)
    ledger.taken("y", 2, 2)
    ledger.finish(["y"])
    ledger.revoke([2])
    assert ledger.held == 0
    assert ledger.finish(["x"]) == []
    ledger.taken("z", 3, 9)
    with pytest.raises(ValueError, match="offset 8 registered after 9"):
        ledger.taken("w", 3, 8)
