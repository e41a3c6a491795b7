"""What the security tests share: the web desk on a real uvicorn server, and clients that
come from a chosen loopback address (127.0.0.0/8 is all this machine's), as a stranger's
browser would from another place. Imported by tests/test_security_*.py (no tests here).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx2

from madoguchi.web_server import WebServer
from tests.test_web_kit import PASSWORD, WebDesk, csrf_in

STRANGER = "127.0.0.9"  # another place on loopback: the server sees this address
STAFF = "127.0.0.1"


@contextmanager
def served(wd: WebDesk) -> Iterator[WebServer]:
    """The desk on a real uvicorn server (a free loopback port)."""
    server = WebServer(wd.settings, desk=wd.desk, web=wd.web, host="127.0.0.1", port=0).start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def serving(wd: WebDesk) -> Iterator[str]:
    """``served``'s base URL."""
    with served(wd) as server:
        yield server.url


@dataclass
class Visitor:
    """A browser-like HTTP client from one address, with the session's CSRF token."""

    client: httpx2.Client
    csrf: str = ""

    def form(self, path: str = "/login") -> str:
        self.csrf = csrf_in(self.client.get(path).text)
        return self.csrf

    def sign_in(self, login: str, password: str = PASSWORD, **headers: str) -> Any:
        token = self.form()
        return self.client.post("/login", data={"login": login, "password": password,
                                                "csrf": token, "next": "/queue"},
                                headers=headers)

    def post(self, path: str, data: dict[str, str] | None = None) -> Any:
        return self.client.post(path, data={**(data or {}), "csrf": self.csrf})

    def close(self) -> None:
        self.client.close()


def visitor(url: str, address: str = STAFF, **kw: Any) -> Visitor:
    transport = httpx2.HTTPTransport(local_address=address)
    return Visitor(httpx2.Client(base_url=url, transport=transport, follow_redirects=False,
                                 timeout=30, **kw))
