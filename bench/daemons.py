"""Real ``madoguchi daemon`` processes for the benchmarks: config, start, kill, wait.

Each daemon runs in a session of its own, so that killing it takes its
parse workers with it, as a service manager's kill of the unit would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psycopg

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def write_config(
    path: Path, *, database_url: str, storage: Path, imap: object, smtp_port: int,
    batch: int, spool: Path | None = None, interval: float = 0.3, outbox_interval: float = 0.3,
    sla_sweep: float = 5, parse_workers: int | None = None,
    smtp: dict[str, object] | None = None, daemon: dict[str, object] | None = None,
    idle: bool = False, imap_interval: float | None = None,
) -> Path:
    """A daemon configuration for a Dovecot account (``imap``) and an SMTP listener.

    ``smtp`` and ``daemon``: more keys of those sections (numbers);
    ``imap_interval``: the mailbox's poll, when not ``interval`` (the spool's).
    """
    more_smtp = "\n".join(f"{k} = {v}" for k, v in (smtp or {}).items())
    more_daemon = "\n".join(f"{k} = {v}" for k, v in (daemon or {}).items())
    spool_source = f"""
[[sources]]
name = "fax"
kind = "fax_spool"
path = "{spool}"
stable_seconds = 0
interval_seconds = {interval}
""" if spool is not None else ""
    path.write_text(f"""
database_url = "{database_url}"
storage_dir = "{storage}"
desk_address = "support@example.co.jp"

[limits]
imap_batch_size = {batch}
{f"parse_workers = {parse_workers}" if parse_workers else ""}

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "plain"
timeout_seconds = 2
{more_smtp}

[acknowledgement]
max_per_sender_per_hour = 100000

[daemon]
outbox_interval_seconds = {outbox_interval}
sla_sweep_seconds = {sla_sweep}
leader_retry_seconds = 0.3
{more_daemon}

[[sources]]
name = "mailbox"
kind = "imap"
host = "{imap.host}"
port = {imap.port}
security = "plain"
username = "{imap.username}"
password_file = "{imap.password_file}"
after_commit = "move"
interval_seconds = {interval if imap_interval is None else imap_interval}
idle = {"true" if idle else "false"}
{spool_source}""", encoding="utf-8")
    return path


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "madoguchi", "--config", str(config), "daemon"],
        stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
    )


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the daemon and every process of its session (its workers)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def stop(proc: subprocess.Popen[bytes], timeout: float = 60) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(proc)
        return -9


def wait_for(predicate: Callable[[], T], timeout: float, what: str, step: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise TimeoutError(f"timed out waiting for {what}")


def fresh_postgres(admin_url: str, name: str) -> str:
    """(Re)create database ``name``; its SQLAlchemy URL."""
    with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' "
                      "LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'")
    return f"{admin_url.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"


def drop_postgres(admin_url: str, name: str) -> None:
    with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
