"""The parse workers: a worker killed while idle is replaced, and no batch pays for it.

A real worker process is killed with SIGKILL between batches; the next
batch large enough for the pool (``POOL_THRESHOLD`` messages or more) must
be stored whole, where before the broken pool was found at submit time,
never renewed, and every later large batch failed with the mail left in
its folder.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from madoguchi.app import Desk
from madoguchi.config import MaildirSource
from madoguchi.ingest.prepare import POOL_THRESHOLD, Preparer
from madoguchi.ingest.sources.folder import MaildirPoller
from tests.conftest import make_settings
from tests.test_faults import assert_all_stored_once, inquiry

# Worker processes are started and killed: the integration lane.
pytestmark = pytest.mark.integration

BATCH = POOL_THRESHOLD + 4


def kill_an_idle_worker(preparer: Preparer) -> int:
    """SIGKILL one of the pool's workers and wait until the pool knows it is broken."""
    pool = preparer._pool
    assert isinstance(pool, ProcessPoolExecutor)
    pid = next(iter(pool._processes))  # type: ignore[attr-defined]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not pool._broken:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "the pool never noticed its dead worker"
        time.sleep(0.02)
    return pid


def maildir(tmp_path: Path, count: int, start: int = 0) -> MaildirSource:
    box = tmp_path / "Maildir"
    for n in range(start, start + count):
        (box / "new").mkdir(parents=True, exist_ok=True)
        (box / "new" / f"{1700000000 + n}.M{n}.desk").write_bytes(inquiry(n))
    return MaildirSource(kind="maildir", name="box", path=box)


@pytest.mark.parametrize("renewed_by", ["the next batch", "the daemon's check"])
def test_a_worker_killed_while_idle_is_replaced_and_the_next_large_batch_is_stored(
    sqlite_url: str, tmp_path: Path, renewed_by: str
) -> None:
    desk = Desk.open(make_settings(sqlite_url, tmp_path, limits={"parse_workers": 2}))
    try:
        desk.pipeline.start_workers()
        preparer = desk.pipeline.preparer
        kill_an_idle_worker(preparer)
        if renewed_by == "the daemon's check":
            assert preparer.check() is False  # found broken: a new pool
            assert preparer._pool is None or not preparer._pool._broken  # type: ignore[attr-defined]

        report = MaildirPoller(maildir(tmp_path, BATCH), desk.pipeline).poll_once()

        assert (report.taken, report.created, report.quarantined) == (BATCH, BATCH, 0)
        assert_all_stored_once(desk, range(BATCH))
        assert preparer.renewals == 1
        # And the one after it, on the new pool, as well.
        kill_an_idle_worker(preparer)
        again = MaildirPoller(maildir(tmp_path, BATCH, start=BATCH), desk.pipeline).poll_once()
        assert (again.created, again.quarantined) == (BATCH, 0)
        assert preparer.renewals == 2
    finally:
        desk.close()


def test_a_worker_killed_while_a_batch_is_read_costs_one_retry_and_quarantines_nothing(
    sqlite_url: str, tmp_path: Path
) -> None:
    # The pool breaks under the batch (the result side): it goes again once, whole.
    desk = Desk.open(make_settings(sqlite_url, tmp_path, limits={"parse_workers": 2}))
    try:
        desk.pipeline.start_workers()
        preparer = desk.pipeline.preparer
        pool = preparer._pool
        assert isinstance(pool, ProcessPoolExecutor)
        pid = next(iter(pool._processes))  # type: ignore[attr-defined]
        # Killed as the batch is handed over: submitted to a pool that is not yet broken.
        original = pool.submit
        killed: list[int] = []

        def submit_then_kill(*args: object, **kwargs: object) -> object:
            future = original(*args, **kwargs)  # type: ignore[arg-type]
            # A real chunk, not a warm-up; once (later chunks may meet the same pool).
            if args[1] and not killed:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            return future

        pool.submit = submit_then_kill  # type: ignore[method-assign]
        report = MaildirPoller(maildir(tmp_path, BATCH), desk.pipeline).poll_once()

        assert (report.created, report.quarantined) == (BATCH, 0)
        assert_all_stored_once(desk, range(BATCH))
        assert preparer.renewals == 1
    finally:
        desk.close()
