"""Do 200 open live-update connections raise the web desk's page latency? (PostgreSQL)

    .venv/bin/python bench/live.py --tickets 200000 > bench/results/live.txt
    # or on bench/web.py's 1 M tickets, kept by its --keep:
    .venv/bin/python bench/live.py --reuse --database madoguchi_bench_web

Builds the database ``madoguchi_bench_live`` the way ``bench/web.py`` does
(``bench.web_data.build``: migrated to head, generated rows inside the server,
the indexes built after the load; dropped at the end unless --keep, reused with
--reuse). The desk is served by uvicorn in a child process (so that the
load generator's threads do not share its interpreter) with the live caps
raised for one client address: ``live_max_connections = 250``,
``live_max_connections_per_client = 250``, ``max_connections_per_client =
400``. Then, in --rounds rounds, each line --requests times after 10 warm-up
requests, over keep-alive HTTP from one client:

1. ``none open``: the queue's first page and a random ticket, no stream open, while a
   writer adds an internal note to a random open ticket every second (as in 2, so that
   the streams are the one difference; each note also clears the queue's kept counts);
2. ``200 open``: the same with --streams server-sent event streams held open
   (half on /live/queue, half on /live/tickets/N of random open tickets,
   each with its presence row beating every 15 s), while a writer adds an
   internal note to a random open ticket every second (each a NOTIFY that the
   server's one listener fans out to the streams concerned); one thread reads
   every stream, and the figures say how many events arrived;
3. (last round only) ``200 open, queues redraw``: the same, and every ``changed`` of a queue
   stream makes the reader fetch the queue page again, 0.3–1.5 s later, as
   ``static/desk.js`` does in the browser (the server sends a queue stream at
   most one ``changed`` per 5 s: ``web.live.QUEUE_EVERY``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import random
import re
import selectors
import socket
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any
from urllib.parse import quote, urlsplit

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import probe  # noqa: E402
from bench.web import PASSWORD, Client, measure  # noqa: E402
from bench.web_data import build  # noqa: E402
from madoguchi.config import load_settings  # noqa: E402
from madoguchi.config.web import WebSettings  # noqa: E402
from madoguchi.ticketing import actions  # noqa: E402
from madoguchi.ticketing.db import transaction, upgrade  # noqa: E402
from madoguchi.ticketing.models import Ticket  # noqa: E402
from madoguchi.ticketing.storage import Storage  # noqa: E402
from madoguchi.web.auth import hash_password  # noqa: E402

DB = "madoguchi_bench_live"
SERVER_PID = 0
VERSION = re.compile(r'name="version" value="([^"]+)"')


def _serve(url: str, tmp: str, ready: Any, stop: Any) -> None:
    import logging

    from madoguchi import heap
    from madoguchi.web_server import WebServer

    settings = load_settings(None, database_url=url, storage_dir=Path(tmp) / "storage",
                             sources=[], log_level="WARNING")
    web = WebSettings(secret_key_file=Path(tmp) / "secret", send_outbox_after_reply=False,
                      live_max_connections=250, live_max_connections_per_client=250,
                      max_connections_per_client=400)
    server = WebServer(settings, web=web, host="127.0.0.1", port=0).start()
    heap.settle()  # as `madoguchi web` does once it is set up
    logging.getLogger("uvicorn.access").disabled = True
    ready.put(server.url)
    stop.wait()
    server.stop()


class Streams:
    """Many open event streams read by one thread; optionally redrawing the queue."""

    def __init__(self, base: str, cookie: str, paths: list[str]) -> None:
        parts = urlsplit(base)
        self.base, self.cookie = base, cookie
        self.selector = selectors.DefaultSelector()
        self.events: dict[str, int] = {}
        self.redraw = False
        self.redraws = 0
        self.closed = 0
        self._stop = threading.Event()
        self._pending: list[float] = []
        self._lock = threading.Lock()
        for path in paths:
            sock = socket.create_connection((parts.hostname, parts.port))
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nCookie: {cookie}\r\n"
                         "Accept: text/event-stream\r\n\r\n".encode())
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ, {"path": path, "buf": b""})
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.redrawer = threading.Thread(target=self._redraw, daemon=True)

    def start(self) -> None:
        self.reader.start()
        self.redrawer.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            for key, _ in self.selector.select(0.5):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self.selector.unregister(sock)
                    sock.close()
                    self.closed += 1
                    continue
                key.data["buf"] += data
                *done, key.data["buf"] = key.data["buf"].split(b"\n\n")
                for block in done:
                    for line in block.split(b"\n"):
                        if line.startswith(b"event: "):
                            name = line[7:].decode()
                            self.events[name] = self.events.get(name, 0) + 1
                            if name == "changed" and self.redraw and \
                                    key.data["path"].endswith("/queue"):
                                with self._lock:
                                    self._pending.append(time.monotonic()
                                                         + random.uniform(0.3, 1.5))

    def _redraw(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            with self._lock:
                due = [t for t in self._pending if t <= now]
                self._pending = [t for t in self._pending if t > now]
            for _ in due:
                if self._stop.is_set():  # closing: the server is about to stop
                    break
                client = Client(self.base)  # a browser's fetch, on a connection of its own
                client.cookie = self.cookie
                status, _page = client.request("GET", "/queue")
                client.conn.close()
                assert status == 200, status
                self.redraws += 1
            time.sleep(0.02)

    def open_count(self) -> int:
        return len(self.selector.get_map())

    def close(self) -> None:
        self._stop.set()
        self.reader.join(2)
        self.redrawer.join(30)  # a redraw under way finishes before the server stops
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]


def _writer(url: str, ticket_ids: list[int], stop: threading.Event, counter: list[int]
            ) -> None:
    settings = load_settings(None, database_url=url, sources=[], log_level="WARNING")
    storage = Storage.open(settings)
    rng = random.Random(7)
    try:
        while not stop.wait(1.0):
            with transaction(storage.factory) as db:
                t = db.get_one(Ticket, rng.choice(ticket_ids))
                actions.add_note(db, t, None, "ベンチ: 社内メモ", _now())
            counter[0] += 1
    finally:
        storage.close()


def _now() -> datetime:
    return datetime.now(UTC)


def _prepare(args: argparse.Namespace) -> None:
    build(args.admin_url, args.database, args.tickets, args.messages_per_ticket)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--tickets", type=int, default=200_000)
    parser.add_argument("--messages-per-ticket", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--database", default=DB,
                        help="its name; with --reuse, e.g. bench/web.py's madoguchi_bench_web "
                             "(1 M tickets) kept by its --keep")
    args = parser.parse_args()
    rng = random.Random(20261202)
    url = f"{args.admin_url.replace('postgresql://', 'postgresql+psycopg://', 1)}/{args.database}"
    started_load = os.getloadavg()[0]
    speed_before = probe()
    if not args.reuse:
        _prepare(args)
    upgrade(url)
    with psycopg.connect(f"{args.admin_url}/{args.database}") as conn:
        conn.execute("DELETE FROM desk_presence")
        conn.execute("INSERT INTO staff_users (login, name, email, password_hash, role, active) "
                     "VALUES ('bench', 'ベンチ 担当', '', %s, 'agent', true) ON CONFLICT (login) "
                     "DO UPDATE SET password_hash = excluded.password_hash",
                     (hash_password(PASSWORD),))
        conn.commit()
        open_tickets = conn.execute("SELECT id, number FROM tickets WHERE status <> 'closed' "
                                    "ORDER BY id LIMIT 5000").fetchall()
        numbers = [r[0] for r in conn.execute(
            "SELECT number FROM tickets ORDER BY random() LIMIT 2000").fetchall()]
        tickets = conn.execute("SELECT count(*) FROM tickets").fetchone()[0]  # type: ignore[index]
        version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]

    ctx = multiprocessing.get_context("spawn")
    with TemporaryDirectory() as tmp:
        ready: Any = ctx.Queue()
        stop = ctx.Event()
        server = ctx.Process(target=_serve, args=(url, tmp, ready, stop))
        server.start()
        try:
            base = ready.get(timeout=120)
            lines, notes = _run(args, base, rng, open_tickets, numbers, url, server.pid)
        finally:
            stop.set()
            server.join(30)

    print(f"# bench/live.py: {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, PostgreSQL {version}; load average at the start "
          f"{started_load:.2f}")
    print(f"# CPU probe (bench/machine.py, lower is faster): {speed_before:.2f} s at the start, "
          f"{probe():.2f} s at the end")
    print(f"# data: database {args.database}, {tickets:,} tickets "
          "(bench/web.py's generator)")
    print(f"# {args.requests} requests per line after 10 warm-up requests; "
          f"{args.streams} streams = {args.streams // 2} queue + "
          f"{args.streams - args.streams // 2} ticket; a note every second ({notes} in all); "
          "load: the 1-minute load average as each line ended")
    for line in lines:
        print(line)
    if not args.keep:
        with psycopg.connect(f"{args.admin_url}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')  # type: ignore[arg-type]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run(args: argparse.Namespace, base: str, rng: random.Random,
         open_tickets: list[tuple[int, str]], numbers: list[str], url: str, pid: int
         ) -> tuple[list[str], int]:
    global SERVER_PID
    SERVER_PID = pid
    client = Client(base)
    client.sign_in("bench")

    def pages(label: str) -> list[str]:
        fresh = Client(base)  # the last one's keep-alive connection has been closed
        fresh.cookie = client.cookie
        return [f"{line}   load {os.getloadavg()[0]:4.1f}" for line in (
            measure(f"queue, {label}", lambda _i: fresh.request("GET", "/queue"),
                    args.requests, lambda p: p.count('class="number"') == 50),
            measure(f"ticket, {label}", lambda _i: fresh.request(
                "GET", f"/tickets/{rng.choice(numbers)}"), args.requests,
                lambda p: p.count('class="msg ') >= args.messages_per_ticket),
        )]

    lines: list[str] = []
    notes = [0]
    # Rounds of none open / open, then open with redraws: the machine is shared, and
    # the rounds show how much of a difference is its noise.
    used = _cpu_seconds(pid)
    time.sleep(30)
    lines.append(f"# server CPU with no stream open, no page requests: "
                 f"{(_cpu_seconds(pid) - used) / 30:.3f} s per s")
    for round_ in range(1, args.rounds + 1):
        lines.append(f"# round {round_}")
        # The same note a second as beside the streams: the streams are the one difference
        # (each note also clears the queue's kept counts, web/count_cache.py).
        stop = threading.Event()
        writer = threading.Thread(target=_writer, args=(
            url, [i for i, _n in rng.sample(open_tickets, 100)], stop, notes), daemon=True)
        writer.start()
        try:
            lines += pages("none open")
        finally:
            stop.set()
            writer.join(10)
        lines += _with_streams(args, base, client.cookie, rng, open_tickets, url, pages, notes,
                               redraw=round_ == args.rounds)
    return lines, notes[0]


def _with_streams(args: argparse.Namespace, base: str, cookie: str, rng: random.Random,
                  open_tickets: list[tuple[int, str]], url: str,
                  pages: Any, notes: list[int], *, redraw: bool) -> list[str]:
    lines: list[str] = []
    half = args.streams // 2
    watched = rng.sample(open_tickets, args.streams - half)
    paths = ["/live/queue"] * half
    reader = Client(base)
    reader.cookie = cookie
    for _id, number in watched:  # each ticket stream from its page's version, as desk.js
        page = reader.request("GET", f"/tickets/{quote(number)}")[1]
        found = VERSION.search(page)
        assert found, number
        paths.append(f"/live/tickets/{quote(number)}?v={quote(found.group(1))}")
    streams = Streams(base, cookie, paths)
    streams.start()
    stop = threading.Event()
    # The notes land on watched tickets: each is one ticket stream's "changed" too.
    writer = threading.Thread(target=_writer, args=(url, [i for i, _n in watched], stop,
                                                    notes), daemon=True)
    writer.start()
    try:
        time.sleep(5)
        # What holding them costs the server, no page asked for: a figure the other
        # work on the machine does not blur (CPU time, not wall-clock).
        used = _cpu_seconds(SERVER_PID)
        time.sleep(30)
        lines.append(f"#   server CPU with {args.streams} streams open, a note a second, no "
                     f"page requests: {(_cpu_seconds(SERVER_PID) - used) / 30:.3f} s per s")
        before = dict(streams.events)
        lines += pages(f"{args.streams} open")
        lines.append(f"#   streams open {streams.open_count()}/{args.streams}; events during "
                     f"the lines: {_delta(streams.events, before)}")
        if not redraw:
            return lines
        streams.redraw = True
        time.sleep(6)
        before, redrawn = dict(streams.events), streams.redraws
        lines += pages(f"{args.streams} open, queues redraw")
        lines.append(f"#   streams open {streams.open_count()}/{args.streams}, queue pages "
                     f"redrawn during the lines {streams.redraws - redrawn}; events: "
                     f"{_delta(streams.events, before)}")
    finally:
        stop.set()
        writer.join(5)
        streams.close()
    return lines


def _delta(now: dict[str, int], before: dict[str, int]) -> str:
    return ", ".join(f"{k} {v - before.get(k, 0)}" for k, v in sorted(now.items())) or "none"


if __name__ == "__main__":
    main()
