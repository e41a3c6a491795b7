"""The queue views' counts kept until a ticket changes (web.count_cache)."""

from __future__ import annotations

from madoguchi.web.count_cache import CountCache


def _counter(start: int = 0) -> tuple[list[int], object]:
    calls = [start]

    def count() -> list[int]:
        calls[0] += 1
        return [calls[0]]

    return calls, count


def test_counts_are_kept_until_a_change_is_heard() -> None:
    cache = CountCache(lambda: True)
    calls, count = _counter()
    assert cache.counts(("agent", "today"), count) == [1]  # type: ignore[arg-type]
    assert cache.counts(("agent", "today"), count) == [1]  # type: ignore[arg-type]
    assert cache.counts(("boss", "today"), count) == [2]  # its own key
    cache.clear()
    assert cache.counts(("agent", "today"), count) == [3]  # type: ignore[arg-type]
    assert calls == [3]


def test_nothing_is_kept_while_the_feed_is_not_listening() -> None:
    listening = [False]
    cache = CountCache(lambda: listening[0])
    _, count = _counter()
    assert [cache.counts("k", count)[0] for _ in range(3)] == [1, 2, 3]  # type: ignore[arg-type]
    listening[0] = True
    assert [cache.counts("k", count)[0] for _ in range(2)] == [4, 4]  # type: ignore[arg-type]


def test_a_count_read_while_a_ticket_changed_is_not_kept() -> None:
    cache = CountCache(lambda: True)

    def count_as_word_arrives() -> list[int]:
        cache.clear()  # the change feed's word comes in while the count runs
        return [7]

    assert cache.counts("k", count_as_word_arrives) == [7]
    assert cache.counts("k", lambda: [8]) == [8]  # the 7 was not kept
    assert cache.counts("k", lambda: [9]) == [8]


def test_a_count_is_not_kept_past_its_age() -> None:
    cache = CountCache(lambda: True, max_age=0.0)
    _, count = _counter()
    assert [cache.counts("k", count)[0] for _ in range(2)] == [1, 2]  # type: ignore[arg-type]
