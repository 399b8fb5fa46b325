"""The bounded cache nodes keep what they learn about peers in."""

from __future__ import annotations

import threading

import pytest

from protocol.bounded import LRUCache


def test_the_least_recently_used_entry_goes_first() -> None:
    cache: LRUCache[str, int] = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recently used
    cache.put("c", 3)
    assert ("a" in cache, "b" in cache, "c" in cache) == (True, False, True)
    cache.put("a", 10)  # an update refreshes it too
    cache.put("d", 4)
    assert (cache.get("a"), cache.get("c"), cache.get("d")) == (10, None, 4)
    assert len(cache) == 2


def test_false_is_a_value_not_a_miss() -> None:
    cache: LRUCache[str, bool] = LRUCache(4)
    cache.put("refused", False)
    assert cache.get("refused") is False
    assert cache.get("unknown") is None


def test_it_stays_bounded_under_concurrent_use() -> None:
    cache: LRUCache[int, int] = LRUCache(100)

    def churn(offset: int) -> None:
        for i in range(5000):
            cache.put(offset + i, i)
            cache.get(offset + i // 2)

    threads = [threading.Thread(target=churn, args=(n * 10_000,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) == 100


def test_a_cache_holds_something() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LRUCache(0)
