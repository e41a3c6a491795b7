"""A flood of sign-ins from a place made to wait is refused before the application, on the
real uvicorn server: from the raw bytes, with the desk's headers, keep-alive kept, while a
clean place and the staff are still let in; Argon2 runs on threads of lower priority.

Guessers come from 127.0.0.9 (another place on loopback); staff from 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from madoguchi.app import Desk
from madoguchi.config import Settings
from madoguchi.web.http import security_headers
from tests.security_kit import STAFF, STRANGER, serving, visitor
from tests.test_web_kit import WebDesk, open_web

pytest_plugins = ["tests.test_web_kit"]

pytestmark = pytest.mark.integration

CLEAN = "127.0.0.10"  # a third place, which never failed
GUESS = (b"POST /login HTTP/1.1\r\nHost: desk\r\nContent-Type: application/x-www-form-"
         b"urlencoded\r\nContent-Length: 34\r\n\r\nlogin=agent&password=wrong&csrf=xx")


@pytest.fixture
def wd(settings: Settings, desk: Desk, tmp_path: Path, quick_hashing: None) -> WebDesk:
    return open_web(settings, desk, tmp_path)


def _pause(url: str, address: str = STRANGER) -> None:
    """Five wrong passwords from ``address``: it must now wait."""
    guesser = visitor(url, address)
    codes = [guesser.sign_in("agent", f"guess-{i}-wrong").status_code for i in range(5)]
    assert codes == [401] * 5
    guesser.close()


def _connect(url: str, address: str = STRANGER) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=10,
                                    source_address=(address, 0))


def _responses(s: socket.socket, n: int) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    """``n`` responses read off a keep-alive connection: status, headers, body."""
    buffer, answers = b"", []
    while len(answers) < n:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            lines = buffer[:end].split(b"\r\n")
            headers: dict[bytes, bytes] = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", b"0"))
            if len(buffer) >= end + 4 + length:
                answers.append((int(lines[0].split(b" ")[1]), headers,
                                buffer[end + 4:end + 4 + length]))
                buffer = buffer[end + 4 + length:]
                continue
        chunk = s.recv(65536)
        assert chunk, f"the server closed the connection after {len(answers)} answers"
        buffer += chunk
    return answers


SECURITY = {name for name, _ in security_headers(set(), static=False, hsts=None)}


def _send(s: socket.socket, data: bytes) -> socket.socket:
    s.sendall(data)
    return s


def _hold(url: str, n: int) -> list[socket.socket]:
    """``n`` sign-ins from the stranger whose bodies never come: each holds a request
    place of the application (``[web] max_concurrent_requests_per_client``)."""
    return [_send(_connect(url), b"POST /login HTTP/1.1\r\nHost: desk\r\nContent-Type: "
                  b"application/x-www-form-urlencoded\r\nContent-Length: 500\r\n\r\nlogin=")
            for _ in range(n)]


@pytest.fixture
def full(settings: Settings, desk: Desk, tmp_path: Path, quick_hashing: None) -> WebDesk:
    # Two places per client: the stranger's two held requests fill the application for it,
    # so that whatever reached the application from there would be answered 503 "busy".
    return open_web(settings, desk, tmp_path, max_concurrent_requests_per_client=2)


def test_a_place_made_to_wait_gets_the_429_with_every_header_and_keeps_its_connection(
    full: WebDesk,
) -> None:
    with serving(full) as url:
        _pause(url)
        held = _hold(url, 2)
        s = _connect(url)
        s.sendall(b"POST /queue HTTP/1.1\r\nHost: desk\r\nContent-Length: 0\r\n\r\n")
        assert _responses(s, 1)[0][0] == 503  # the application is full for this place ...
        s.sendall(GUESS * 3)  # ... and three guesses in one write (pipelined), as a flood
        answers = _responses(s, 3)
        clean = _connect(url, CLEAN)
        page = _responses(_send(clean, b"GET /login HTTP/1.1\r\nHost: d\r\n\r\n"), 1)[0]
        for h in (*held, clean):
            h.close()
        threading.Event().wait(0.3)
        s.sendall(b"GET /login HTTP/1.1\r\nHost: desk\r\n\r\n")
        after = _responses(s, 1)[0]
        s.close()
    for status, headers, body in answers:
        # Answered before the application: no place needed, so not 503.
        assert status == 429 and int(headers[b"retry-after"]) >= 1
        assert b"set-cookie" not in headers  # no session was started for it
        assert "しばらく時間をおいて" in body.decode()
        assert headers[b"content-type"] == b"text/html; charset=utf-8"
        # Every security header an ordinary page of the desk carries, with the same value.
        assert headers.keys() >= SECURITY
        for name in SECURITY:
            assert headers[name] == page[1][name], name
    assert after[0] == 200  # the same connection serves the next request


def test_while_a_place_is_refused_a_clean_place_and_the_staff_are_let_in(full: WebDesk) -> None:
    with serving(full) as url:
        _pause(url)
        held = _hold(url, 2)
        s = _connect(url)
        s.sendall(GUESS * 20)
        assert {status for status, _, _ in _responses(s, 20)} == {429}
        # Another place's wrong password is checked (401), the owner's right one admitted.
        assert visitor(url, CLEAN).sign_in("agent", "not-the-password").status_code == 401
        assert visitor(url, STAFF).sign_in("agent").status_code == 303
        for h in held:
            h.close()
        # And once the pause is over, the guesser's next attempt is checked again (a name
        # that is no account: "agent" is guarded against failing places for longer).
        retry = int(_responses(_send(s, GUESS), 1)[0][1][b"retry-after"])
        threading.Event().wait(retry + 0.2)
        again = visitor(url, STRANGER)
        assert again.sign_in("nobody", "still-wrong").status_code == 401
        s.close()


def test_a_guesser_that_sends_thousands_without_reading_gets_every_answer_in_order(
    wd: WebDesk,
) -> None:
    with serving(wd) as url:
        _pause(url)
        s = _connect(url)
        s.settimeout(30)
        # 900 guesses and then a page (under the 1,000 requests a connection may carry),
        # while reading nothing: their answers (MBs) overfill the socket buffers, so the
        # server's writes stop and the rest waits its turn (never all answers in memory).
        guesses = wd.web.max_requests_per_connection - 100
        sender = threading.Thread(target=s.sendall, args=(
            GUESS * guesses + b"GET /login HTTP/1.1\r\nHost: d\r\n\r\n",))
        sender.start()
        threading.Event().wait(0.5)
        answers = _responses(s, guesses + 1)
        sender.join(30)
        s.close()
    codes = [status for status, _, _ in answers]
    assert sum(len(body) for _, _, body in answers) > 1_000_000  # more than buffers hold
    assert codes[-1] == 200 and set(codes[:-1]) <= {401, 429}
    # (a guess that comes after a pause ends is checked: at most a few of them)
    assert codes.count(429) >= guesses - 10


def test_a_request_split_across_reads_or_from_behind_the_proxy_is_refused_all_the_same(
    settings: Settings, desk: Desk, tmp_path: Path, quick_hashing: None
) -> None:
    wd = open_web(settings, desk, tmp_path, trusted_proxies=["127.0.0.1"])
    with serving(wd) as url:
        _pause(url)
        s = _connect(url)
        s.sendall(GUESS[:40])  # the rest comes later: uvicorn and the application answer it
        threading.Event().wait(0.2)
        s.sendall(GUESS[40:])
        status, headers, _body = _responses(s, 1)[0]
        assert status == 429 and headers.keys() >= SECURITY and b"set-cookie" not in headers
        # Behind the trusted proxy the client is in X-Forwarded-For, which the raw bytes
        # alone do not tell: the application's early layer refuses it instead.
        proxy = visitor(url, STAFF)
        for i in range(5):
            proxy.sign_in("agent", f"wrong-{i}-guess", **{"X-Forwarded-For": "198.51.100.7"})
        r = proxy.sign_in("agent", "again-wrong", **{"X-Forwarded-For": "198.51.100.7"})
        assert r.status_code == 429 and "set-cookie" not in r.headers
        assert "default-src" in r.headers["content-security-policy"]
        assert visitor(url, STAFF).sign_in(
            "agent", **{"X-Forwarded-For": "198.51.100.8"}).status_code == 303
        s.close()


def _nice(native_id: int) -> int:
    stat = Path(f"/proc/self/task/{native_id}/stat").read_text()
    return int(re.sub(r"^.*\) ", "", stat).split()[16])  # field 19: nice


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="Linux threads' nice values")
def test_passwords_are_checked_on_threads_of_lower_priority_than_the_event_loop(
    wd: WebDesk,
) -> None:
    with serving(wd) as url:
        assert visitor(url, STAFF).sign_in("agent").status_code == 303
        checkers = [t for t in threading.enumerate() if t.name.startswith("argon2")]
        loop = next(t for t in threading.enumerate() if t.name == "madoguchi-web")
        assert checkers, "no password-check thread ran the check"
        assert loop.native_id is not None
        for t in checkers:
            assert t.native_id is not None
            assert _nice(t.native_id) >= _nice(loop.native_id) + 5
    assert os.nice(0) == _nice(threading.main_thread().native_id or 0)  # only those threads
