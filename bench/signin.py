"""Does the sign-in throttle hold a flood of anonymous guesses, memory flat, staff still in?

    .venv/bin/python bench/signin.py > bench/results/signin.txt

The desk is served by ``madoguchi web`` in a process of its own (SQLite in a
temporary folder, Argon2 at its production cost, the shipped [web] limits),
so that its memory and CPU are measured alone. Anonymous visitors from
--addresses loopback addresses (127.0.1.1, 127.0.1.2, …; all of 127.0.0.0/8
is this machine) keep --connections keep-alive connections each; each
connection first loads the sign-in page (its session cookie and CSRF token),
then posts wrong passwords — for the staff login ``agent`` and for names that
do not exist — at --rate attempts per second in all, for --seconds. The pace
is a schedule (attempt i is due at start + i/rate), sent on a connection with
no answer outstanding, else pipelined behind the answers awaited (at most
``DEPTH`` on one connection); a due attempt that finds every connection that
full is not sent, and counted so. Meanwhile a member of staff signs in from
127.0.0.1 with the right password every 2 s, on a fresh connection, as a
browser would (a thread of its own, blocking sockets).

The load generator is one selector loop over non-blocking sockets (no
asyncio, no HTTP library): it shares the machine's two cores with the server
and must cost it little. Printed: the rate reached (attempts answered per
second, by status, and per 10 s), the answers' latency, the CPU spent by the
server (its event loop apart from its other threads: Argon2, request
threads) and by the generator, the password checks the server actually ran
(the sign_in_attempts rows: only those reach Argon2), the staff sign-ins and
their latency, and the server's resident memory every 10 s. Everything stays
on loopback and stops by itself.
"""

from __future__ import annotations

import argparse
import errno
import os
import platform
import random
import re
import selectors
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from urllib.parse import urlencode

import psutil

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"
DEPTH = 8  # requests pipelined on one connection at most
_CSRF = re.compile(rb'name="csrf" value="([^"]+)"')
_COOKIE = re.compile(rb"^set-cookie:\s*([^=]+=[^;]*)", re.IGNORECASE | re.MULTILINE)
_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)
_HEAD = b"Host: desk\r\nUser-Agent: bench-signin\r\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(cookie: bytes = b"") -> bytes:
    return (b"GET /login HTTP/1.1\r\n" + _HEAD
            + (b"Cookie: " + cookie + b"\r\n" if cookie else b"") + b"\r\n")


def _post(cookie: bytes, login: str, password: str, csrf: str) -> bytes:
    body = urlencode({"login": login, "password": password, "csrf": csrf}).encode()
    return (b"POST /login HTTP/1.1\r\n" + _HEAD
            + b"Content-Type: application/x-www-form-urlencoded\r\n"
            + (b"Cookie: " + cookie + b"\r\n" if cookie else b"")
            + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def _take_response(buf: bytearray) -> tuple[int, bytes, bytes] | None:
    """The first whole response in ``buf`` (removed from it): status, head, body."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end])
    match = _LENGTH.search(head)
    total = end + 4 + (int(match.group(1)) if match else 0)
    if len(buf) < total:
        return None
    body = bytes(buf[end + 4:total])
    del buf[:total]
    return int(head[9:12]), head, body


@dataclass(eq=False)
class Conn:
    """One guesser's keep-alive connection."""

    address: str
    rng: random.Random
    sock: socket.socket = field(default_factory=socket.socket)
    ready: bool = False  # the sign-in page is in: cookie and token known
    open: bool = True
    cookie: bytes = b""
    csrf: str = ""
    buf: bytearray = field(default_factory=bytearray)
    sent: deque[float] = field(default_factory=deque)  # when each awaited request left

    def attempt(self) -> bytes:
        login = "agent" if self.rng.random() < 0.5 else f"nobody-{self.rng.getrandbits(40):x}"
        return _post(self.cookie, login, f"guess-{self.rng.getrandbits(32):x}", self.csrf)


class Flood:
    """The guessers' selector loop."""

    def __init__(self, port: int, args: argparse.Namespace, server: psutil.Process) -> None:
        self.port, self.rate, self.seconds = port, args.rate, args.seconds
        self.server = server
        self.sel = selectors.DefaultSelector()
        self.codes: Counter[int] = Counter()
        self.windows: Counter[int] = Counter()  # answers per 10 s of the flood
        self.latency: list[float] = []
        self.errors = self.unsent = self.sent = 0
        self.memory: list[tuple[float, float]] = []
        self.idle: deque[Conn] = deque()
        self.conns: list[Conn] = []
        self.start = self.end = 0.0

    def _open(self, address: str, rng: random.Random) -> None:
        conn = Conn(address, rng)
        conn.sock.setblocking(False)
        conn.sock.bind((address, 0))
        err = conn.sock.connect_ex(("127.0.0.1", self.port))
        if err not in (0, errno.EINPROGRESS):
            self.errors += 1
            conn.sock.close()
            return
        conn.sent.append(time.monotonic())
        self.sel.register(conn.sock, selectors.EVENT_WRITE, conn)
        self.conns.append(conn)

    def _lost(self, conn: Conn) -> None:
        # The server closed it (or it failed): what was awaited is lost; open another.
        self.errors += 1 if conn.sent else 0
        conn.open = False
        self.sel.unregister(conn.sock)
        conn.sock.close()
        self.conns.remove(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        if time.monotonic() < self.end:
            self._open(conn.address, conn.rng)

    def _writable(self, conn: Conn) -> None:
        if conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            self._lost(conn)
            return
        self.sel.modify(conn.sock, selectors.EVENT_READ, conn)
        self._send(conn, _get())

    def _send(self, conn: Conn, data: bytes) -> None:
        try:
            conn.sock.send(data)  # small requests: the loopback socket buffer takes them
        except OSError:
            self._lost(conn)

    def _readable(self, conn: Conn, now: float) -> None:
        try:
            data = conn.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._lost(conn)
            return
        conn.buf += data
        took = False
        while conn.sent and (answer := _take_response(conn.buf)) is not None:
            took = True
            status, head, body = answer
            began = conn.sent.popleft()
            conn.cookie = b"; ".join(_COOKIE.findall(head)) or conn.cookie
            if not conn.ready:
                token = _CSRF.search(body)
                if token is None:
                    self._lost(conn)
                    return
                conn.csrf, conn.ready = token.group(1).decode(), True
            else:
                self.codes[status] += 1
                self.windows[int((now - self.start) // 10)] += 1
                self.latency.append(now - began)
        if took and conn.ready and not conn.sent:
            self.idle.append(conn)

    def _due(self, now: float) -> None:
        """Sends every attempt whose time has come."""
        while self.next_due <= now and self.next_due < self.end:
            self.next_due += 1 / self.rate
            conn = self.idle.popleft() if self.idle else self._pipelined()
            if conn is None:
                self.unsent += 1
                continue
            conn.sent.append(now)
            self.sent += 1
            self._send(conn, conn.attempt())

    def _pipelined(self) -> Conn | None:
        # The ready connection with the fewest answers awaited, if below DEPTH.
        best = min((c for c in self.conns if c.ready), key=lambda c: len(c.sent), default=None)
        return best if best is not None and len(best.sent) < DEPTH else None

    def run(self, addresses: int, connections: int) -> None:
        self.start = time.monotonic()
        self.end = self.start + self.seconds
        self.next_due = self.start
        for a in range(addresses):
            for n in range(connections):
                self._open(f"127.0.1.{a + 1}", random.Random(f"127.0.1.{a + 1}-{n}"))
        next_sample = self.start
        drain = self.end + 2.0  # answers to attempts sent before the end still count
        while True:
            now = time.monotonic()
            if now >= next_sample and now < self.end:
                self.memory.append((now - self.start, self.server.memory_info().rss / 2**20))
                next_sample += 1.0
            self._due(now)
            if now >= self.end and (now >= drain or not any(c.sent for c in self.conns)):
                break
            timeout = max(0.0, min(self.next_due, next_sample) - now) if now < self.end else 0.05
            for key, events in self.sel.select(timeout):
                conn = key.data
                if not conn.open:
                    continue
                if events & selectors.EVENT_WRITE:
                    self._writable(conn)
                else:
                    self._readable(conn, time.monotonic())
        for conn in self.conns:
            conn.sock.close()


def _staff_sign_in(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        buf = bytearray()

        def answer(request: bytes) -> tuple[int, bytes, bytes]:
            s.sendall(request)
            while (found := _take_response(buf)) is None:
                chunk = s.recv(65536)
                if not chunk:
                    raise OSError("closed")
                buf.extend(chunk)
            return found

        _, head, page = answer(_get())
        token = _CSRF.search(page)
        if token is None:
            return 0
        cookie = b"; ".join(_COOKIE.findall(head))
        return answer(_post(cookie, "agent", PASSWORD, token.group(1).decode()))[0]


def _staff(port: int, end: float, results: list[tuple[float, int]]) -> None:
    while time.monotonic() < end:
        began = time.monotonic()
        try:
            status = _staff_sign_in(port)
        except OSError:
            status = 0
        results.append((time.monotonic() - began, status))
        time.sleep(max(0.0, 2.0 - (time.monotonic() - began)))


def _serve(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MADOGUCHI_DATABASE_URL": f"sqlite:///{tmp / 'desk.db'}",
           "MADOGUCHI_STORAGE_DIR": str(tmp / "storage"), "MADOGUCHI_LOG_LEVEL": "WARNING",
           "MADOGUCHI_WEB__SECRET_KEY_FILE": str(tmp / "web-secret"),
           "MADOGUCHI_NEW_PASSWORD": PASSWORD}
    cli = [sys.executable, "-m", "madoguchi"]
    subprocess.run([*cli, "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run([*cli, "users", "add", "agent", "--name", "佐藤 彩香"], env=env, check=True,
                   capture_output=True)
    log = open(tmp / "web.log", "wb")  # noqa: SIM115 (kept for the server's life)
    server = subprocess.Popen([*cli, "web", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the web desk did not start")


@dataclass
class Cpu:
    """CPU seconds (user + system) of the server's event loop, its other threads, and us."""

    loop: float
    others: float
    own: float

    @classmethod
    def now(cls, server: psutil.Process) -> Cpu:
        threads = {t.id: t.user_time + t.system_time for t in server.threads()}
        total = sum(server.cpu_times()[:2])
        loop = threads.get(server.pid, 0.0)  # uvicorn's loop is the main thread
        return cls(loop, total - loop, sum(psutil.Process().cpu_times()[:2]))

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(self.loop - other.loop, self.others - other.others, self.own - other.own)


def _flood(port: int, args: argparse.Namespace, server: psutil.Process
           ) -> tuple[Flood, list[tuple[float, int]], Cpu]:
    flood = Flood(port, args, server)
    staff: list[tuple[float, int]] = []
    helper = threading.Thread(target=_staff, args=(port, time.monotonic() + args.seconds, staff))
    before = Cpu.now(server)
    helper.start()
    flood.run(args.addresses, args.connections)
    helper.join(60)
    return flood, staff, Cpu.now(server) - before


def _report(args: argparse.Namespace, flood: Flood, staff: list[tuple[float, int]], cpu: Cpu,
            checked: tuple[int, int | None], memory: tuple[float, float], extra: str) -> None:
    answered = sum(flood.codes.values())
    per = 1000 / max(answered, 1)
    print(f"# bench/signin.py: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{platform.platform()}")
    print(f"# target {args.rate:g} attempts/s for {args.seconds:g} s from {args.addresses} "
          f"loopback addresses x {args.connections} keep-alive connections; staff from "
          "127.0.0.1 every 2 s")
    print(f"attempts answered   {answered} in {args.seconds:g} s = "
          f"{answered / args.seconds:.0f}/s  (" + ", ".join(
              f"{k}: {v}" for k, v in sorted(flood.codes.items())) + ")")
    print("answered per 10 s   " + "  ".join(
        f"{w * 10}s {flood.windows[w] / 10:.0f}/s" for w in sorted(flood.windows)))
    print(f"attempts sent       {flood.sent} ({flood.unsent} due but not sent: every "
          f"connection had {DEPTH} awaited); connection errors {flood.errors}")
    lat = sorted(flood.latency) or [0.0]
    print(f"answer latency      p50 {lat[len(lat) // 2] * 1000:.1f} ms, p99 "
          f"{lat[int(len(lat) * 0.99)] * 1000:.1f} ms, max {lat[-1] * 1000:.0f} ms")
    server = cpu.loop + cpu.others
    print(f"CPU seconds         server {server:.1f} ({server / args.seconds:.0%} of a core; "
          f"{server * per:.2f} ms per attempt): event loop {cpu.loop:.1f} "
          f"({cpu.loop * per:.3f} ms per attempt), other threads {cpu.others:.1f}; "
          f"load generator {cpu.own:.1f} ({cpu.own * per:.3f} ms per attempt)")
    print(f"passwords checked   {checked[0]} (Argon2 runs; {checked[1] or 0} of them staff's "
          "right password)")
    ok = [t for t, s in staff if s == 303]
    print(f"staff sign-ins      {len(ok)} of {len(staff)} admitted; latency p50 "
          f"{statistics.median(ok) * 1000:.0f} ms, max {max(ok) * 1000:.0f} ms" if ok else
          f"staff sign-ins      0 of {len(staff)} admitted")
    samples = [m for _, m in flood.memory]
    print(f"server memory       {memory[0]:.0f} MiB before, {memory[1]:.0f} MiB after; "
          f"min {min(samples):.0f}, max {max(samples):.0f} MiB")
    print("memory by time      " + "  ".join(f"{t:.0f}s {m:.0f}" for t, m in flood.memory[::10]))
    print(extra)


def _profile(pid: int, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen([str(spy), "record", "--pid", str(pid), "--rate", "100",
                             "--nonblocking", "--threads", "--format", "raw", "--duration",
                             str(int(args.seconds)), "-o", str(args.profile)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000, help="attempts per second, in all")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--addresses", type=int, default=20)
    parser.add_argument("--connections", type=int, default=10, help="per address")
    parser.add_argument("--profile", type=Path, help="py-spy's collapsed stacks of the server "
                        "during the flood, into this file (a diagnosis, not a figure)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with TemporaryDirectory() as name:
        tmp = Path(name)
        port = _free_port()
        proc = _serve(tmp, port)
        try:
            server = psutil.Process(proc.pid)
            before = server.memory_info().rss / 2**20
            spy = _profile(proc.pid, args) if args.profile else None
            flood, staff, cpu = _flood(port, args, server)
            if spy is not None:
                spy.wait(60)
            after = server.memory_info().rss / 2**20
        finally:
            proc.terminate()
            proc.wait(30)
        checked = sqlite3.connect(tmp / "desk.db").execute(
            "SELECT count(*), sum(succeeded) FROM sign_in_attempts").fetchone()
        log_bytes = (tmp / "web.log").stat().st_size
        if os.environ.get("SIGNIN_LOG"):
            sys.stderr.write((tmp / "web.log").read_text(errors="replace")[-3000:])
    print(f"# Run: .venv/bin/python bench/signin.py {' '.join(sys.argv[1:])}"
          f"  (load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; the "
          "load generator runs on the same 2 cores)")
    _report(args, flood, staff, cpu, checked, (before, after),
            f"server log          {log_bytes} bytes (level WARNING)")


if __name__ == "__main__":
    main()
