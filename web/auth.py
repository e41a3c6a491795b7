"""Staff sign-in: password hashes, the session secret, and a brake on guessing.

Passwords are hashed with Argon2id (argon2-cffi's defaults, rehashed on
sign-in when those defaults grow). They are never logged, never stored in
the session, never echoed into a page.

The session is a row of ``web_sessions`` (``ticketing.sessions``); the
cookie, signed with itsdangerous (Starlette's SessionMiddleware), holds its
random token, the CSRF token and the messages of the next page. New
passwords must pass ``web.passwords``; the brake on guessing is
``web.throttle``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from madoguchi.ticketing.models import StaffUser
from madoguchi.web.passwords import PasswordPolicyError as PasswordPolicyError
from madoguchi.web.passwords import check_new_password as check_new_password

log = logging.getLogger("madoguchi.web.auth")

_T = TypeVar("_T")
_hasher = PasswordHasher()
_dummy_hash: list[str] = []


class TooBusyError(RuntimeError):
    """No password check could start in time: answer 503, check nothing."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _spend_a_verification(password: str) -> None:
    # An unknown login costs as long as a wrong password: timing tells nothing.
    if not _dummy_hash:
        _dummy_hash.append(_hasher.hash(secrets.token_hex(16)))
    verify_password(_dummy_hash[0], password)


def find_user(session: Session, login: str) -> StaffUser | None:
    """The staff user with this login (active or not), before any password is checked."""
    return session.scalar(select(StaffUser).where(StaffUser.login == login.strip()))


# Argon2's threads run this much nicer than the event loop, so that the loop, which
# answers refusals and every other request, is never starved by the checks it admits.
ARGON2_NICENESS = 5


def _lower_priority() -> None:
    # On Linux the nice value is a thread's own: only this pool's threads yield.
    try:
        os.nice(ARGON2_NICENESS)
    except OSError:  # pragma: no cover - a platform without per-thread nice
        log.debug("could not lower the priority of a password-check thread")


class PasswordChecks:
    """How many Argon2 checks run at once (each takes 64 MiB and most of a core), and who waits.

    ``slots`` checks at once, of which one is kept for attempts from a *clean*
    address (no recent failure: staff at their own desk), so that a flood of
    guesses from places that have failed already cannot queue ahead of them.
    At most ``max_waiting`` attempts from other addresses wait for a slot,
    each at most ``wait`` seconds (a clean one five times as long); beyond that
    ``TooBusyError`` (503) at once, so that waiting requests never pile up.

    The checks themselves run (``run``) on threads of their own, one per slot,
    at a lower priority (``ARGON2_NICENESS``) than the request threads and the
    event loop.
    """

    def __init__(self, slots: int, *, max_waiting: int = 4, wait: float = 2.0) -> None:
        self._shared = threading.BoundedSemaphore(max(1, slots - 1))
        self._clean = threading.BoundedSemaphore(1)
        self._waiting = 0
        self._lock = threading.Lock()
        self.max_waiting, self.wait = max_waiting, wait
        self._pool = ThreadPoolExecutor(max(2, slots), thread_name_prefix="argon2",
                                        initializer=_lower_priority)

    def run(self, check: Callable[[], _T]) -> _T:
        """``check()`` on a password-check thread (call it inside ``slot``)."""
        return self._pool.submit(check).result()

    @contextlib.contextmanager
    def slot(self, *, clean: bool) -> Iterator[None]:
        if self._shared.acquire(blocking=False):
            held = self._shared
        elif clean and self._clean.acquire(blocking=False):
            held = self._clean
        else:
            held = self._queue(clean)
        try:
            yield
        finally:
            held.release()

    def _queue(self, clean: bool) -> threading.BoundedSemaphore:
        with self._lock:
            if self._waiting >= self.max_waiting and not clean:
                raise TooBusyError("too many password checks waiting")
            self._waiting += 1
        try:
            # A clean place waits longer: it is rarely a guesser, often the staff.
            deadline = time.monotonic() + self.wait * (5 if clean else 1)
            while time.monotonic() < deadline:
                if self._shared.acquire(timeout=0.05):
                    return self._shared
                if clean and self._clean.acquire(blocking=False):
                    return self._clean
            raise TooBusyError("no password check could start in time")
        finally:
            with self._lock:
                self._waiting -= 1


def check_password(user: StaffUser | None, password: str) -> bool:
    """Is ``password`` right for this active user? An unknown or disabled user costs the same.

    Callers bound how many run at once (``PasswordChecks``). A rehash
    (argon2-cffi's defaults grew) is left on ``user`` for the caller to commit.
    """
    if user is None or not user.active:
        _spend_a_verification(password)
        return False
    if not verify_password(user.password_hash, password):
        return False
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return True


def authenticate(session: Session, login: str, password: str) -> StaffUser | None:
    """The active staff user with this login and password, or None."""
    user = find_user(session, login)
    return user if check_password(user, password) else None


def load_secret(path: Path) -> bytes:
    """The key that signs session cookies, created (0600) on first use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(secrets.token_hex(32) + "\n")
        log.info("created the web session secret %s", path)
    if path.stat().st_mode & 0o077:
        log.warning("%s can be read by other users: chmod 600 it", path)
    value = path.read_text(encoding="utf-8").strip()
    if len(value) < 32:
        raise ValueError(f"{path}: the web session secret must have at least 32 characters")
    return value.encode()
