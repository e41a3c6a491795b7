"""The web desk as the application serves it: with uvicorn, in the foreground
(``madoguchi web``) or in a thread, and with /metrics from ``madoguchi.health``.

``web_app`` is the Starlette app on the desk's storage with the desk's
metrics collector. ``WebServer`` runs uvicorn in a background thread of the
calling process — the daemon when ``[web] serve_in_daemon`` is set, and the
browser tests. uvicorn installs no signal handlers off the main thread; the
owner stops it.
"""

from __future__ import annotations

import threading
import time

import uvicorn
from starlette.applications import Starlette

from madoguchi import heap
from madoguchi.config import Settings
from madoguchi.config.web import WebSettings
from madoguchi.health import metric_families
from madoguchi.ticketing.storage import Storage
from madoguchi.web.app import create_app, web_settings
from madoguchi.web.refusal import RawRefusal
from madoguchi.web_guard import (
    ConcurrencyLimit,
    GuardLimits,
    guarded_protocol,
    install_flood_filter,
)


def web_app(settings: Settings, *, desk: Storage | None = None,
            web: WebSettings | None = None) -> Starlette:
    """The web desk for ``settings``; shares ``desk`` if given, else opens its own storage
    (closed when the app shuts down). ``web`` overrides the ``[web]`` section.
    """
    storage = desk if desk is not None else Storage.open(settings)
    return create_app(storage, web=web, metrics=metric_families, close_storage=desk is None)


def _config(app: Starlette, host: str, port: int, web: WebSettings) -> uvicorn.Config:
    install_flood_filter()
    return uvicorn.Config(
        ConcurrencyLimit(app, web.max_concurrent_requests, web.max_concurrent_requests_per_client,
                         tuple(web.trusted_proxies), live=web.live_max_connections,
                         live_per_client=web.live_max_connections_per_client),
        host=host,
        port=port,
        # Deadlines for headers and body, caps on connections (madoguchi.web_guard); a
        # sign-in the throttle makes wait refused from its raw bytes (web.refusal).
        http=guarded_protocol(GuardLimits.of(web),
                              RawRefusal(app.state.desk, app.state.refusal)),
        timeout_keep_alive=max(1, round(web.keep_alive_seconds)),
        h11_max_incomplete_event_size=16 * 1024,
        backlog=1024,
        # Request lines only: paths and status codes, never form bodies.
        access_log=True,
        log_config=None,
        # X-Forwarded-* are read by the desk itself, from [web] trusted_proxies only.
        proxy_headers=False,
        server_header=False,
        lifespan="on",
    )


def serve(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """Serve in the foreground until interrupted (SIGINT/SIGTERM)."""
    web = web_settings(settings)
    app = web_app(settings)
    config = _config(app, host or web.host, port or web.port, web)
    heap.settle()
    uvicorn.Server(config).run()


class WebServer:
    """The web desk on ``host:port`` in a thread of this process (port 0: any free one)."""

    def __init__(self, settings: Settings, *, desk: Storage | None = None,
                 web: WebSettings | None = None, host: str | None = None,
                 port: int | None = None) -> None:
        web = web or web_settings(settings)
        self.app = web_app(settings, desk=desk, web=web)
        self._server = uvicorn.Server(
            _config(self.app, host or web.host, web.port if port is None else port, web)
        )
        self._thread = threading.Thread(target=self._server.run, name="madoguchi-web",
                                        daemon=True)

    def start(self, timeout: float = 15) -> WebServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the web desk did not start (is the port in use?)")
            time.sleep(0.02)
        return self

    @property
    def url(self) -> str:
        sockets = [s for server in self._server.servers for s in server.sockets]
        host, port = sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def stop(self, timeout: float = 10) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)


def start_for_daemon(desk: Storage) -> WebServer | None:
    """The web desk in the daemon's process, when ``[web] serve_in_daemon`` is set."""
    if not web_settings(desk.settings).serve_in_daemon:
        return None
    return WebServer(desk.settings, desk=desk).start()
