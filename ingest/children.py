"""Processes the daemon starts die with it, even when it is killed with SIGKILL.

``multiprocessing``'s forkserver and the parse workers it forks would
otherwise live on after a ``kill -9`` of the daemon (each holds the other's
pipes open), and with them the resource tracker, which waits for the last
of them. Linux's ``PR_SET_PDEATHSIG`` has the kernel signal a process when
the thread that started it ends; it is set, through ``ctypes`` (no
dependency for one system call), in the forkserver as it starts (the
module ``madoguchi.ingest._forkserver``, preloaded there) and in each worker
(the pool's initializer). Once the forkserver and the workers are gone, the
resource tracker reads the end of its pipe and exits by itself.

The forkserver must be started by a thread that lives as long as the
daemon (its main thread: ``Pipeline.start_workers``); one started later by
another thread dies with that thread, and the next pool starts a new one.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Be sent ``sig`` when the parent process ends (Linux; elsewhere nothing)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        return  # not permitted here: the parent's own clean-up still applies
    if os.getppid() == 1:
        os._exit(0)  # the parent was gone before the signal was asked for
