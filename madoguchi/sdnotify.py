"""systemd's service notification (sd_notify(3)): READY, WATCHDOG, STOPPING, STATUS.

Under ``Type=notify`` systemd hands the service a datagram socket in
``NOTIFY_SOCKET`` (a path, or an abstract name written with a leading
``@``), and reads ``KEY=VALUE`` lines sent to it; with ``WatchdogSec`` it
also sets ``WATCHDOG_USEC`` and restarts the service when no ``WATCHDOG=1``
comes within that time. The protocol is one ``sendto`` of a few bytes and is
documented as stable, so it is written here rather than taken from a
library: ``systemd-python`` needs libsystemd's headers and a compiler to
install, and the pure-Python ``sdnotify`` has not been released since 2017.
Without ``NOTIFY_SOCKET`` (not run by systemd) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("madoguchi.sdnotify")


def notify(*lines: str) -> bool:
    """Send ``lines`` (``READY=1``, ``WATCHDOG=1``...) to systemd; False when not under it."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    target = "\0" + address[1:] if address.startswith("@") else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(lines).encode(), target)
    except OSError as exc:
        log.warning("could not notify systemd at %s: %s", address, exc)
        return False
    return True


def watchdog_seconds() -> float | None:
    """The watchdog's timeout systemd set for this process (``WatchdogSec``), or None."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1_000_000
