"""The long-running processes' heap: what is loaded at start-up is left out of the GC's walks.

CPython's full (generation 2) collection walks every object that survived
two collections, and in a desk process that is mostly what start-up loaded
(modules, SQLAlchemy's mappers, the app). Measured on the web desk at
1 M tickets (bench/results/web.txt, runs 12-14's note): a full collection
every 150 requests or so took 85-95 ms, the slowest request of every line;
with those objects frozen (``gc.freeze``) it takes 2-3 ms.

Called once by ``madoguchi web`` and ``madoguchi daemon`` when they are set
up, not by ``create_app`` or ``Daemon``: a test process builds hundreds of
apps, and objects frozen there would never be collected if they formed cycles.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect what start-up left behind, then freeze what survives."""
    gc.collect()
    gc.freeze()
