"""How long to wait after failures in a row: the one backoff of the desk.

The outbox waits so between attempts at a row the SMTP server refused for
now; the daemon so between polls of a source that fails.
"""

from __future__ import annotations

import random
from datetime import timedelta


def backoff_delay(
    failures: int, *, base_seconds: float, max_seconds: float, rng: random.Random
) -> timedelta:
    """The wait after the ``failures``-th failure in a row: doubling, capped, jittered.

    Between half and all of ``min(max_seconds, base_seconds * 2 ** (failures - 1))``,
    so that what failed together (rows refused together, daemons that lost
    one server) does not come back together.
    """
    exponent = min(max(failures - 1, 0), 32)
    ceiling = min(max_seconds, base_seconds * 2**exponent)
    return timedelta(seconds=ceiling * (0.5 + 0.5 * rng.random()))
