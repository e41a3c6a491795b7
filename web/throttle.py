"""A brake on password guessing that an attacker cannot turn against the staff.

Two kinds of key, each with its own count of recent failures:

- the client address (an IPv6 address counts by its /64): after
  ``free_failures`` failures, each further attempt from it must wait
  ``base_delay`` × 2^(failures − free_failures) seconds (at most ``max_delay``)
  after its last one; an attempt sooner is refused without checking anything;
- the account (only accounts that exist): after ``free_failures`` failures
  from anywhere, the account is *guarded* for the same doubling delay: an
  address that has failed recently may not try it, but a **clean** address
  (no failure within ``window``) still may — so the right password from the
  member of staff's own browser is admitted while strangers hammer the name.

An attempt is *reserved* before its password is hashed: the reservation
counts as a failure at once and is taken back when the password proves
right. Sixty guesses sent at the same moment from one address therefore get
``free_failures`` hashes, not sixty. Once a key has had its free failures, it
has at most one attempt under way at a time: while its reserved check runs
(until ``finished``), however long Argon2 takes on a loaded machine, every
further attempt of that address (or, from a failing place, of that account)
is refused, so a flood cannot queue password checks behind a pause that
ended. Both tables hold at most ``max_keys``
entries (the least recently used goes first) and forget an entry once its
failures are ``window`` seconds old and no delay is running: memory is
bounded whatever the names and addresses tried.

The state is this process's: the desk runs one web process (the daemon's or
``madoguchi web``). Several processes behind one proxy would each keep their
own, which multiplies the guesses allowed by their number.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

# A reserved check not finished after this long no longer holds its key back
# (a check is bounded by PasswordChecks' waits; this only guards against a leak).
PENDING_LIMIT = 60.0


@dataclass
class _Entry:
    failures: int = 0
    last: float = 0.0
    pending: int = 0  # reserved attempts whose check has not finished


@dataclass(frozen=True)
class Reservation:
    """An attempt allowed to check its password: give it back with ``succeeded``.

    ``clean``: its address had no recent failure (it is served first).
    """

    address: str
    account: str | None
    clean: bool = False


@dataclass(frozen=True)
class Refusal:
    """An attempt refused before any password check; try again after ``retry_after`` s."""

    retry_after: float


def address_key(host: str) -> str:
    """The key of a client address: itself, or its /64 for IPv6 (one subscriber's block)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return f"addr:{host[:64]}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"addr:{ip.ipv4_mapped}"
        return f"addr:{ipaddress.ip_network(f'{ip}/64', strict=False)}"
    return f"addr:{ip}"


class _Table:
    """Failure counts by key, bounded in size and forgotten after their time."""

    def __init__(self, max_keys: int, forget_after: float) -> None:
        self.max_keys = max_keys
        self.forget_after = forget_after
        self.entries: OrderedDict[str, _Entry] = OrderedDict()

    def get(self, key: str, now: float, window: float) -> _Entry | None:
        entry = self.entries.get(key)
        if entry is not None and now - entry.last > window:
            entry.failures = 0
        return entry

    def touch(self, key: str, now: float) -> _Entry:
        self.forget(now)
        entry = self.entries.get(key)
        if entry is None:
            while len(self.entries) >= self.max_keys:
                self.entries.popitem(last=False)
            entry = self.entries[key] = _Entry()
        self.entries.move_to_end(key)
        return entry

    def forget(self, now: float) -> None:
        # Ordered by last update: the stale ones are at the front.
        while self.entries:
            key, first = next(iter(self.entries.items()))
            if now - first.last <= self.forget_after:
                return
            del self.entries[key]


class SignInThrottle:
    def __init__(self, *, free_failures: int = 5, base_delay: float = 1.0,
                 max_delay: float = 900.0, window: float = 900.0, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.free_failures = free_failures
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.window = window
        self._clock = clock
        forget = max(window, max_delay)
        self._addresses = _Table(max_keys, forget)
        self._accounts = _Table(max_keys, forget)
        self._lock = threading.Lock()

    def delay(self, failures: int) -> float:
        """How long after its last failure a key with ``failures`` failures waits."""
        if failures < self.free_failures:
            return 0.0
        return min(self.max_delay, self.base_delay * 2.0 ** (failures - self.free_failures))

    def _wait(self, entry: _Entry | None, now: float) -> float:
        if entry is None or entry.failures < self.free_failures:
            return 0.0
        wait = max(0.0, entry.last + self.delay(entry.failures) - now)
        if not wait and entry.pending and now - entry.last < PENDING_LIMIT:
            return self.base_delay  # one attempt at a time after a pause: its check still runs
        return wait

    def address_wait(self, address: str) -> float:
        """Seconds the address must still wait (0: it may try): a cheap first look."""
        now = self._clock()
        with self._lock:
            return self._wait(self._addresses.get(address, now, self.window), now)

    def reserve(self, address: str, account: str | None) -> Reservation | Refusal:
        """Allow one attempt (counted as failed until ``succeeded``; ``finished`` when its
        check is over), or refuse it."""
        now = self._clock()
        with self._lock:
            addr = self._addresses.get(address, now, self.window)
            wait = self._wait(addr, now)
            if wait:
                return Refusal(wait)
            clean = addr is None or addr.failures == 0
            if account is not None and not clean:
                wait = self._wait(self._accounts.get(account, now, self.window), now)
                if wait:
                    # Trying a guarded account from a failing place is one more failure
                    # of that place: its own pauses grow.
                    entry = self._addresses.touch(address, now)
                    entry.failures += 1
                    entry.last = now
                    return Refusal(wait)
            self._accounts.forget(now)
            for table, key in ((self._addresses, address), (self._accounts, account)):
                if key is not None:
                    entry = table.touch(key, now)
                    entry.failures += 1
                    entry.last = now
                    entry.pending += 1
            return Reservation(address, account, clean)

    def _held(self, reservation: Reservation) -> list[_Entry]:
        """The entries a reservation counted in (those still tracked); under the lock."""
        found = []
        for table, key in ((self._addresses, reservation.address),
                           (self._accounts, reservation.account)):
            entry = table.entries.get(key) if key is not None else None
            if entry is not None:
                found.append(entry)
        return found

    def finished(self, reservation: Reservation) -> None:
        """The reserved attempt's check is over (whatever its outcome)."""
        with self._lock:
            for entry in self._held(reservation):
                entry.pending = max(0, entry.pending - 1)

    def succeeded(self, reservation: Reservation) -> None:
        """The password was right: the reservation was no failure."""
        with self._lock:
            for entry in self._held(reservation):
                entry.failures = max(0, entry.failures - 1)

    def size(self) -> int:
        """Entries held (addresses and accounts): what bounds the throttle's memory."""
        now = self._clock()
        with self._lock:
            for table in (self._addresses, self._accounts):
                table.forget(now)
            return len(self._addresses.entries) + len(self._accounts.entries)
