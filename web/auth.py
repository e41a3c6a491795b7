"""Staff sign-in: password hashes, the session secret, and a brake on guessing.

Passwords are hashed with Argon2id (argon2-cffi's defaults, rehashed on
sign-in when those defaults grow). They are never logged, never stored in
the session, never echoed into a page.

The session itself is a cookie signed with itsdangerous (Starlette's
SessionMiddleware) and holds only the staff id, a fingerprint of the
password hash, the sign-in time, the last request's time and the CSRF token.
Each request checks the account is still active and the fingerprint still
matches, so a password change or deactivation signs out every session.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from madoguchi.ticketing.models import StaffUser

log = logging.getLogger("madoguchi.web.auth")

MIN_PASSWORD_LENGTH = 10
_hasher = PasswordHasher()
_dummy_hash: list[str] = []


class PasswordPolicyError(ValueError):
    pass


def check_new_password(password: str) -> None:
    """Refuse passwords too short to resist guessing; the message is for the operator."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordPolicyError(
            f"the password must have at least {MIN_PASSWORD_LENGTH} characters"
        )
    if password != password.strip():
        raise PasswordPolicyError("the password must not begin or end with white space")


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


def authenticate(session: Session, login: str, password: str) -> StaffUser | None:
    """The active staff user with this login and password, or None."""
    user = session.scalar(select(StaffUser).where(StaffUser.login == login.strip()))
    if user is None or not user.active:
        _spend_a_verification(password)
        return None
    if not verify_password(user.password_hash, password):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def password_fingerprint(secret: bytes, user: StaffUser) -> str:
    """Changes whenever the password does; keyed so the cookie reveals nothing of the hash."""
    return hmac.new(secret, user.password_hash.encode(), hashlib.sha256).hexdigest()[:24]


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


class LoginThrottle:
    """Failed sign-ins per login name and per client address, in this process.

    After ``max_failures`` within ``window`` seconds, that key may not try
    again until the oldest failure is ``window`` seconds old.
    """

    def __init__(self, max_failures: int, window: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _now(self) -> float:
        return self._clock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def blocked(self, *keys: str) -> bool:
        now = self._now()
        with self._lock:
            return any(len(self._recent(k, now)) >= self.max_failures for k in keys)

    def failed(self, *keys: str) -> None:
        now = self._now()
        with self._lock:
            for k in keys:
                self._recent(k, now).append(now)

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for k in keys:
                self._failures.pop(k, None)
