"""How fast this machine's CPU is right now, for reading a timing beside it.

A shared virtual machine's core can run the same work at half speed from one
minute to the next (seen here: 0.38 s and 0.70 s for ``probe()``'s loop a
minute apart, with the load average under 1). The benchmarks print the probe
before and after their lines, so that two runs can be compared.
"""

from __future__ import annotations

import time


def probe(rounds: int = 3) -> float:
    """CPU seconds for a fixed pure-Python loop (3 million multiply-adds), best of ``rounds``."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        total = 0
        for i in range(3_000_000):
            total += i * i
        best = min(best, time.process_time() - started)
    return best
