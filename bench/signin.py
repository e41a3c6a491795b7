"""Does the sign-in throttle hold a flood of anonymous guesses, memory flat, staff still in?

    .venv/bin/python bench/signin.py > bench/results/signin.txt

The desk is served by ``madoguchi web`` in a process of its own (SQLite in a
temporary folder, Argon2 at its production cost, the shipped [web] limits),
so that its memory is measured alone. Anonymous visitors from --addresses
loopback addresses (127.0.1.1, 127.0.1.2, …; all of 127.0.0.0/8 is this
machine) keep --connections keep-alive connections each and post wrong
passwords — for the staff login ``agent`` and for names that do not exist —
paced at --rate attempts per second in all, for --seconds. Meanwhile a member
of staff signs in from 127.0.0.1 with the right password every 2 s, on a
fresh connection, as a browser would.

Printed: the rate reached (attempts answered per second, by status), the
password checks the server actually ran (the sign_in_attempts rows: only
those reach Argon2), the staff sign-ins and their latency, and the server's
resident memory every 10 s. Everything stays on loopback and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from tempfile import TemporaryDirectory

import psutil

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"
_CSRF = re.compile(rb'name="csrf" value="([^"]+)"')
_COOKIE = re.compile(rb"^set-cookie:\s*([^=]+=[^;]*)", re.IGNORECASE | re.MULTILINE)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str,
                   path: str, cookie: bytes, body: bytes = b"") -> tuple[int, bytes, bytes]:
    """One HTTP/1.1 request on a keep-alive connection: status, headers, body."""
    head = (f"{method} {path} HTTP/1.1\r\nHost: desk\r\nUser-Agent: bench-signin\r\n"
            f"Content-Length: {len(body)}\r\n").encode()
    if body:
        head += b"Content-Type: application/x-www-form-urlencoded\r\n"
    if cookie:
        head += b"Cookie: " + cookie + b"\r\n"
    writer.write(head + b"\r\n" + body)
    await writer.drain()
    raw = await reader.readuntil(b"\r\n\r\n")
    status = int(raw.split(b" ", 2)[1])
    length = re.search(rb"content-length:\s*(\d+)", raw, re.IGNORECASE)
    payload = await reader.readexactly(int(length.group(1))) if length else b""
    return status, raw, payload


def _form(login: str, password: str, csrf: str) -> bytes:
    from urllib.parse import urlencode

    return urlencode({"login": login, "password": password, "csrf": csrf}).encode()


class Load:
    def __init__(self, port: int, rate: float, seconds: float) -> None:
        self.port, self.rate, self.seconds = port, rate, seconds
        self.codes: Counter[int] = Counter()
        self.errors = 0
        self.next_slot = 0.0
        self.end = 0.0

    async def _slot(self) -> bool:
        # A shared pace: each attempt takes the next 1/rate slot, or the flood ends.
        now = time.monotonic()
        self.next_slot = max(self.next_slot, now) + 1 / self.rate
        wait = self.next_slot - 1 / self.rate - now
        if wait > 0:
            await asyncio.sleep(wait)
        return time.monotonic() < self.end

    async def guesser(self, address: str, n: int) -> None:
        rng = random.Random(f"{address}-{n}")
        while time.monotonic() < self.end:
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", self.port, local_addr=(address, 0))
            except OSError:
                self.errors += 1
                await asyncio.sleep(0.1)
                continue
            try:
                _, head, page = await _request(reader, writer, "GET", "/login", b"")
                cookie = b"; ".join(_COOKIE.findall(head))
                csrf = _CSRF.search(page)
                while csrf and await self._slot():
                    login = "agent" if rng.random() < 0.5 else f"nobody-{rng.getrandbits(40):x}"
                    status, head, _ = await _request(
                        reader, writer, "POST", "/login", cookie,
                        _form(login, f"guess-{rng.getrandbits(32):x}", csrf.group(1).decode()))
                    self.codes[status] += 1
                    cookie = b"; ".join(_COOKIE.findall(head)) or cookie
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                self.errors += 1
            finally:
                writer.close()

    async def staff(self, results: list[tuple[float, int]]) -> None:
        while time.monotonic() < self.end:
            began = time.monotonic()
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                _, head, page = await _request(reader, writer, "GET", "/login", b"")
                cookie = b"; ".join(_COOKIE.findall(head))
                csrf = _CSRF.search(page)
                assert csrf
                status, _, _ = await _request(reader, writer, "POST", "/login", cookie,
                                              _form("agent", PASSWORD, csrf.group(1).decode()))
                writer.close()
            except (OSError, asyncio.IncompleteReadError, AssertionError):
                status = 0
            results.append((time.monotonic() - began, status))
            await asyncio.sleep(max(0.0, 2.0 - (time.monotonic() - began)))


async def _flood(port: int, args: argparse.Namespace, server: psutil.Process
                 ) -> tuple[Load, list[tuple[float, int]], list[tuple[float, float]]]:
    load = Load(port, args.rate, args.seconds)
    start = time.monotonic()
    load.end = start + args.seconds
    staff: list[tuple[float, int]] = []
    memory: list[tuple[float, float]] = []

    async def sample() -> None:
        while time.monotonic() < load.end:
            memory.append((time.monotonic() - start, server.memory_info().rss / 2**20))
            await asyncio.sleep(1)

    tasks = [load.guesser(f"127.0.1.{a + 1}", n)
             for a in range(args.addresses) for n in range(args.connections)]
    await asyncio.gather(load.staff(staff), sample(), *tasks)
    return load, staff, memory


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000, help="attempts per second, in all")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--addresses", type=int, default=20)
    parser.add_argument("--connections", type=int, default=10, help="per address")
    args = parser.parse_args()
    with TemporaryDirectory() as name:
        tmp = Path(name)
        port = _free_port()
        proc = _serve(tmp, port)
        try:
            server = psutil.Process(proc.pid)
            before = server.memory_info().rss / 2**20
            cpu_before, own_before = server.cpu_times(), psutil.Process().cpu_times()
            load, staff, memory = asyncio.run(_flood(port, args, server))
            cpu_after, own_after = server.cpu_times(), psutil.Process().cpu_times()
            after = server.memory_info().rss / 2**20
        finally:
            proc.terminate()
            proc.wait(30)
        checked = sqlite3.connect(tmp / "desk.db").execute(
            "SELECT count(*), sum(succeeded) FROM sign_in_attempts").fetchone()
        log_bytes = (tmp / "web.log").stat().st_size
        if os.environ.get("SIGNIN_LOG"):
            sys.stderr.write((tmp / "web.log").read_text(errors="replace")[-3000:])
    answered = sum(load.codes.values())
    print(f"# bench/signin.py: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{platform.platform()}")
    print(f"# target {args.rate:g} attempts/s for {args.seconds:g} s from {args.addresses} "
          f"loopback addresses x {args.connections} keep-alive connections; staff from "
          "127.0.0.1 every 2 s")
    print(f"attempts answered   {answered} in {args.seconds:g} s = "
          f"{answered / args.seconds:.0f}/s  (" + ", ".join(
              f"{k}: {v}" for k, v in sorted(load.codes.items())) + ")")
    print(f"connection errors   {load.errors}")
    # The load generator shares the machine's cores with the server: what each spent
    # tells whether the server or the generator set the rate.
    server_cpu = sum(cpu_after[:2]) - sum(cpu_before[:2])
    own_cpu = sum(own_after[:2]) - sum(own_before[:2])
    print(f"CPU seconds         server {server_cpu:.1f} ({server_cpu / args.seconds:.0%} of a "
          f"core; {server_cpu / max(answered, 1) * 1000:.2f} ms per attempt), load generator "
          f"{own_cpu:.1f}; load average {os.getloadavg()[0]:.1f}")
    print(f"passwords checked   {checked[0]} (Argon2 runs; {checked[1] or 0} of them staff's "
          "right password)")
    ok = [t for t, s in staff if s == 303]
    print(f"staff sign-ins      {len(ok)} of {len(staff)} admitted; latency p50 "
          f"{statistics.median(ok) * 1000:.0f} ms, max {max(ok) * 1000:.0f} ms" if ok else
          f"staff sign-ins      0 of {len(staff)} admitted")
    print(f"server memory       {before:.0f} MiB before, {after:.0f} MiB after; "
          f"min {min(m for _, m in memory):.0f}, max {max(m for _, m in memory):.0f} MiB")
    print("memory by time      " + "  ".join(f"{t:.0f}s {m:.0f}" for t, m in memory[::10]))
    print(f"server log          {log_bytes} bytes (level WARNING)")


if __name__ == "__main__":
    main()
