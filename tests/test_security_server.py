"""The HTTP server against half-open connections and floods, on the real uvicorn server.

Clients come from 127.0.0.9 (another place on loopback); staff from 127.0.0.1.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from madoguchi.app import Desk
from madoguchi.config import Settings
from tests.security_kit import STRANGER, served, serving, visitor
from tests.test_web_kit import WebDesk, open_web

pytest_plugins = ["tests.test_web_kit"]

pytestmark = pytest.mark.integration


@pytest.fixture
def wd(sqlite_url: str, tmp_path: Path, quick_hashing: None) -> WebDesk:
    from tests.conftest import make_settings

    settings: Settings = make_settings(sqlite_url, tmp_path)
    return open_web(settings, Desk.open(settings), tmp_path, header_timeout_seconds=1.5,
                    max_connections_per_client=64, max_connections=400)


def _half_open(host: str, port: int, n: int, address: str = STRANGER) -> list[socket.socket]:
    """``n`` connections that start a request and never finish its headers."""
    opened = []
    for _ in range(n):
        s = socket.socket()
        s.bind((address, 0))
        s.settimeout(5)
        try:
            s.connect((host, port))
            s.sendall(b"GET /login HTTP/1.1\r\nHost: desk\r\nX-Slow: ")
        except OSError:
            s.close()
            continue
        opened.append(s)
    return opened


def _closed_by_server(s: socket.socket) -> bool:
    try:
        return s.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_half_open_connections_are_capped_and_cut_off_and_staff_are_still_served(
    wd: WebDesk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with serving(wd) as url:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        sockets = _half_open(host, port, 600)
        try:
            # Staff are answered at once meanwhile, from their own address.
            began = time.monotonic()
            assert visitor(url).client.get("/login").status_code == 200
            assert time.monotonic() - began < 2
            # One address holds at most 64 of them: the others were closed at once ...
            time.sleep(0.3)
            live = [s for s in sockets if not _closed_now(s)]
            assert len(live) <= 64
            # ... and the rest are cut off when their headers do not come in time.
            deadline = time.monotonic() + 10
            for s in live:
                s.settimeout(max(0.1, deadline - time.monotonic()))
                assert _closed_by_server(s)
        finally:
            for s in sockets:
                s.close()
    # Hundreds of refusals, a few dozen lines of log.
    guard = [r for r in caplog.records if r.name.startswith(("madoguchi.web", "uvicorn"))]
    assert len(guard) < 100, len(guard)


def test_connections_refused_in_one_burst_do_not_count_against_the_others(
    sqlite_url: str, tmp_path: Path, quick_hashing: None,
) -> None:
    # Connections the server takes in one go (its loop was busy while they came) are
    # all made before the refused ones are gone: only those it kept may count.
    from tests.conftest import make_settings

    settings: Settings = make_settings(sqlite_url, tmp_path)
    wd = open_web(settings, Desk.open(settings), tmp_path, header_timeout_seconds=5,
                  max_connections_per_client=64, max_connections=100)
    with served(wd) as server:
        parts = urlsplit(server.url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        loop = server._server.servers[0].get_loop()
        busy = threading.Event()
        loop.call_soon_threadsafe(lambda: (busy.set(), time.sleep(2)))
        assert busy.wait(5)
        # Meanwhile 200 from one place (64 may stay) and then one of staff, all waiting
        # to be taken together.
        sockets = _half_open(host, port, 200)
        staff = socket.create_connection((host, port), timeout=10)
        try:
            staff.sendall(b"GET /login HTTP/1.1\r\nHost: desk\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := staff.recv(65536):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
            # The cap on all of them holds: 64 from another place find 36 places left.
            time.sleep(0.3)
            kept = [s for s in sockets if not _closed_now(s)]
            assert len(kept) == 64
            others = _half_open(host, port, 64, address="127.0.0.11")
            sockets += others
            time.sleep(0.3)
            assert len([s for s in others if not _closed_now(s)]) == 36
        finally:
            staff.close()
            for s in sockets:
                s.close()


def _closed_now(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        return s.recv(1024) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        s.setblocking(True)


def test_a_body_trickled_a_byte_at_a_time_is_cut_off(wd: WebDesk) -> None:
    with serving(wd) as url:
        parts = urlsplit(url)
        s = socket.create_connection((parts.hostname, parts.port), timeout=5,
                                     source_address=(STRANGER, 0))
        s.sendall(b"POST /login HTTP/1.1\r\nHost: desk\r\nContent-Type: "
                  b"application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n")
        began, cut = time.monotonic(), False
        while time.monotonic() - began < 30:
            try:
                s.sendall(b"a")
            except OSError:
                cut = True
                break
            time.sleep(0.5)
        s.close()
        assert cut  # within the body deadline (6 × header_timeout_seconds), not for ever
        assert time.monotonic() - began < 1.5 * 6 + 5


def test_a_request_uvicorn_cannot_parse_gets_400_with_the_security_headers(wd: WebDesk) -> None:
    with serving(wd) as url:
        parts = urlsplit(url)
        s = socket.create_connection((parts.hostname, parts.port), timeout=5,
                                     source_address=(STRANGER, 0))
        s.sendall(b"GET /login HTTP/1.1\r\nHost: desk\r\nBad Header Line\r\n\r\n")
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
        s.close()
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 400")
    for name in (b"content-security-policy:", b"x-frame-options: deny",
                 b"x-content-type-options: nosniff", b"cache-control: no-store"):
        assert name in head
