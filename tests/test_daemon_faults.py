"""The daemon heals itself: each fault the fault benchmark found, caused for real, once.

- the scheduler's job-store connection terminated (``pg_terminate_backend``)
  during the job store's UPDATE, or SQLite's write lock held by another
  process past the busy timeout at that moment: the scheduler's loop goes
  on, and mail queued afterwards is sent (before: the "APScheduler" thread
  died and nothing was scheduled again);
- the leader's lock connection terminated: it stops scheduling at once, the
  standby leads under a higher epoch, and SIGTERM still exits 0 (before: two
  schedulers, and exit 1 from the lock's release);
- PostgreSQL refusing connections at start-up and again while one daemon
  leads and one stands by: both wait and carry on (before: exit 1);
- ``kill -9`` of the daemon: its forkserver, workers and resource tracker
  die with it (before: they stayed);
- systemd's protocol on a real datagram socket: READY, WATCHDOG pings,
  STOPPING; a job wedged past ``daemon.wedged_seconds`` makes the daemon
  exit 70 for systemd to restart it.

Dead parse workers are ``test_worker_pool.py``; the two windows after the
final dot are ``test_outbox.py``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import make_url
from sqlalchemy.pool import Pool

from madoguchi.app import Desk
from madoguchi.config import load_settings
from madoguchi.daemon import Daemon
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.heartbeats import read_beats
from madoguchi.ticketing.models import DaemonLeader, OutboxMessage, OutboxStatus
from madoguchi.ticketing.outbox import enqueue
from tests.conftest import make_settings
from tests.postgres import PostgresCluster, PostgresDatabases
from tests.smtp_server import SmtpTestServer
from tests.test_daemon import (
    CONTACT,
    acks,
    register_customers,
    start_daemon,
    wait_for,
    write_config,
)
from tests.test_faults import WriteLock, pg_cluster, pg_cluster_databases, sqlite_path
from tests.test_outbox import mail

# The system lane: whole daemons, faults injected (tests/conftest.py).
pytestmark = pytest.mark.slow
__all__ = ["pg_cluster", "pg_cluster_databases"]  # fixtures, shared with test_faults

FAST = {"outbox_interval_seconds": 0.2, "sla_sweep_seconds": 1, "leader_retry_seconds": 0.3,
        "lease_renew_seconds": 0.3, "heartbeat_seconds": 0.5}


# -- the scheduler's loop outlives its job store's errors (in this process) -----------


def run_daemon(desk: Desk) -> tuple[Daemon, threading.Event, threading.Thread]:
    daemon = Daemon(desk)
    stop = threading.Event()
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(daemon.run(stop)), daemon=True)
    thread.start()
    wait_for(lambda: daemon.epoch is not None, what="the daemon to lead")
    return daemon, stop, thread


def queue_mail(desk: Desk, key: str) -> int:
    with transaction(desk.factory) as session:
        row = enqueue(session, kind="ack", dedupe_key=key, ticket=None, message=mail(),
                      now=datetime.now(UTC))
        assert row is not None
        return row.id


def sent(desk: Desk, row_id: int) -> bool:
    with desk.factory() as session:
        return session.get_one(OutboxMessage, row_id).status is OutboxStatus.SENT


@pytest.fixture
def job_store_fault() -> Iterator[Callable[[Callable[[Any], None]], list[int]]]:
    """``arm(action)``: run ``action(dbapi_conn)`` once, before the job store's first UPDATE."""
    listeners: list[Callable[..., None]] = []

    def arm(action: Callable[[Any], None]) -> list[int]:
        fired: list[int] = []

        def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if not fired and statement.lstrip().upper().startswith("UPDATE APSCHEDULER_JOBS"):
                fired.append(1)
                action(conn.connection.dbapi_connection)

        from sqlalchemy.engine import Engine

        event.listen(Engine, "before_cursor_execute", before)
        listeners.append(before)
        return fired

    yield arm
    from sqlalchemy.engine import Engine

    for listener in listeners:
        event.remove(Engine, "before_cursor_execute", listener)


@pytest.mark.postgres
def test_scheduler_goes_on_after_its_job_store_connection_is_terminated(
    postgres_databases: PostgresDatabases, tmp_path: Path, smtp_server: SmtpTestServer,
    job_store_fault: Callable[[Callable[[Any], None]], list[int]],
) -> None:
    admin = f"{postgres_databases.admin_url}/postgres"

    def terminate(dbapi_conn: Any) -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", [dbapi_conn.info.backend_pid])

    desk = Desk.open(make_settings(postgres_databases.new(), tmp_path, daemon=FAST,
                                   smtp=smtp_server.smtp_settings()))
    fired = job_store_fault(terminate)
    _daemon, stop, thread = run_daemon(desk)
    try:
        wait_for(lambda: fired, what="the job store's UPDATE")
        row_id = queue_mail(desk, "after-the-fault")
        wait_for(lambda: sent(desk, row_id), what="mail queued after the fault to be sent")

        def scheduler_beating() -> bool:
            # The beats are written every heartbeat_seconds: the next write shows it.
            with desk.factory() as session:
                beats = {b.component: b for b in read_beats(session)}
            beat = beats.get("scheduler")
            return (beat is not None and beat.state in ("running", "retrying")
                    and not beat.late(datetime.now(UTC)))

        wait_for(scheduler_beating, what="the scheduler's beat after the fault")
    finally:
        stop.set()
        thread.join(30)
        desk.close()


def test_scheduler_goes_on_after_another_writer_holds_sqlite_past_the_busy_timeout(
    sqlite_url: str, tmp_path: Path, smtp_server: SmtpTestServer,
    job_store_fault: Callable[[Callable[[Any], None]], list[int]],
) -> None:
    def busy_200ms(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA busy_timeout=200")  # after the desk's 30 s one

    event.listen(Pool, "connect", busy_200ms)
    lock = WriteLock(sqlite_path(sqlite_url))
    desk = Desk.open(make_settings(sqlite_url, tmp_path, daemon=FAST,
                                   smtp=smtp_server.smtp_settings()))

    def hold_the_lock(_conn: Any) -> None:
        # The daemon's other threads write often (fast settings): on a loaded
        # machine the lock may take a while to win; then it is held 1 s.
        assert lock.acquire(wait=60)
        threading.Timer(1.0, lock.release).start()  # 5 x the busy timeout

    fired = job_store_fault(hold_the_lock)
    _daemon, stop, thread = run_daemon(desk)
    try:
        wait_for(lambda: fired and lock.acquired and not lock.held, timeout=90,
                 what="the lock taken and let go")
        assert lock.acquired == 1
        row_id = queue_mail(desk, "after-the-lock")
        wait_for(lambda: sent(desk, row_id), what="mail queued after the lock to be sent")
    finally:
        stop.set()
        thread.join(30)
        lock.release()
        event.remove(Pool, "connect", busy_200ms)
        desk.close()


# -- leadership that cannot split (real daemon processes, PostgreSQL) -----------------


def leader_lock_backend(admin_url: str, database: str) -> int:
    with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as conn:
        row = conn.execute(
            "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE l.locktype = 'advisory' AND l.objid = %s AND l.classid = 0 "
            "AND d.datname = %s AND l.granted", [0x4D61646F, database]).fetchone()
    assert row is not None, "nobody holds the leader lock"
    return int(row[0])


def log_of(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def stop_all(procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    for proc, log in zip(procs, logs, strict=True):
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log_of(log)


@pytest.mark.postgres
def test_a_leader_whose_lock_connection_is_terminated_stops_and_the_standby_leads(
    tmp_path: Path, dovecot: Any, smtp_server: SmtpTestServer,
    postgres_databases: PostgresDatabases,
) -> None:
    url = postgres_databases.new()
    config = write_config(tmp_path, url, dovecot, smtp_server, lease_renew_seconds=0.3)
    register_customers(config)
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    procs = [start_daemon(config, logs[0])]
    try:
        wait_for(lambda: "is the scheduler (epoch 1)" in log_of(logs[0]), what="the leader")
        procs.append(start_daemon(config, logs[1]))
        wait_for(lambda: "standing by" in log_of(logs[1]), what="the standby")
        pid = leader_lock_backend(postgres_databases.admin_url, make_url(url).database or "")
        with psycopg.connect(f"{postgres_databases.admin_url}/postgres",
                             autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])

        wait_for(lambda: "stopped scheduling: the lead of epoch 1 is lost" in log_of(logs[0]),
                 what="the first daemon to stop scheduling")
        # Whoever took the lock next leads under epoch 2 (the first only once it
        # found the lock free, as any standby): one of them, never both.
        wait_for(lambda: [log for log in logs if "is the scheduler (epoch 2)" in log_of(log)],
                 what="a leader of epoch 2")
        time.sleep(1)
        leaders = [i for i, log in enumerate(logs) if "is the scheduler (epoch 2)" in log_of(log)]
        assert len(leaders) == 1, [log_of(log) for log in logs]
        assert not any("(epoch 3)" in log_of(log) for log in logs)
        desk = Desk.open(load_settings(config))
        try:
            with desk.factory() as session:
                row = session.scalars(select(DaemonLeader)).one()
            assert row.epoch == 2
            assert row.holder is not None and row.holder.endswith(f":{procs[leaders[0]].pid}")
        finally:
            desk.close()
        # No job ran under epoch 1 once it was found lost.
        after_loss = log_of(logs[0]).split("lost the lead of epoch 1", 1)[1]
        assert "run as the leader of epoch 1" not in after_loss
        dovecot.append(_inquiry("split-1"))
        wait_for(lambda: len(acks(smtp_server)) == 1, what="the new leader's acknowledgement")
        time.sleep(1)
        assert len(acks(smtp_server)) == 1
        stop_all(procs, logs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()


def _inquiry(message_id: str) -> bytes:
    from tests.mailfactory import make_mail

    return make_mail(from_=CONTACT, message_id=f"{message_id}@sakura-shoji.example.jp")


@pytest.mark.postgres
def test_daemons_wait_out_a_postgres_that_refuses_at_start_and_while_they_run(
    tmp_path: Path, dovecot: Any, smtp_server: SmtpTestServer, pg_cluster: PostgresCluster,
    pg_cluster_databases: PostgresDatabases,
) -> None:
    if not pg_cluster.running:
        pg_cluster.start()
    config = write_config(tmp_path, pg_cluster_databases.new(), dovecot, smtp_server,
                          lease_renew_seconds=0.3)
    register_customers(config)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        pg_cluster.stop("fast")
        procs = [start_daemon(config, log) for log in logs]
        time.sleep(3)  # both start while every connection is refused
        assert [p.poll() for p in procs] == [None, None], [log_of(log) for log in logs]
        pg_cluster.start()
        wait_for(lambda: sum("is the scheduler" in log_of(log) for log in logs) == 1,
                 timeout=40, what="one of them to lead")
        wait_for(lambda: any("standing by" in log_of(log) for log in logs),
                 what="the other to stand by")
        pg_cluster.stop("fast")  # the leader's lock goes with its session
        time.sleep(3)
        assert [p.poll() for p in procs] == [None, None], [log_of(log) for log in logs]
        pg_cluster.start()
        dovecot.append(_inquiry("refused-1"))
        wait_for(lambda: len(acks(smtp_server)) == 1, timeout=60,
                 what="the acknowledgement after the database came back")
        stop_all(procs, logs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        if not pg_cluster.running:
            pg_cluster.start()


# -- children die with their daemon; systemd's protocol ---------------------------------


def folder_config(tmp_path: Path, smtp: SmtpTestServer, **daemon: object) -> Path:
    lines = "\n".join(f"{k} = {v}" for k, v in {**FAST, **daemon}.items())
    config = tmp_path / "madoguchi.toml"
    config.write_text(f"""
database_url = "sqlite:///{tmp_path / 'desk.db'}"
storage_dir = "{tmp_path / 'storage'}"
[limits]
parse_workers = 2
[smtp]
host = "{smtp.host}"
port = {smtp.port}
security = "plain"
timeout_seconds = 30
[daemon]
{lines}
[[sources]]
name = "box"
kind = "maildir"
path = "{tmp_path / 'Maildir'}"
interval_seconds = 0.5
""", encoding="utf-8")
    from madoguchi.ticketing.db import upgrade

    upgrade(f"sqlite:///{tmp_path / 'desk.db'}")
    return config


def test_the_children_of_a_killed_daemon_die_with_it(
    tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    config = folder_config(tmp_path, smtp_server)
    log = tmp_path / "d.log"
    proc = start_daemon(config, log)
    try:
        wait_for(lambda: "is the scheduler" in log_of(log), what="the daemon to lead")
        children = psutil.Process(proc.pid).children(recursive=True)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        assert "forkserver" in names and "resource_tracker" in names, names
        assert len(children) >= 4  # the tracker, the forkserver and two workers
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        _gone, alive = psutil.wait_procs(children, timeout=15)
        assert alive == [], [" ".join(p.cmdline()) for p in alive]
    finally:
        if proc.poll() is None:
            proc.kill()


def test_systemd_hears_ready_watchdog_and_stopping_and_a_wedged_job_exits_70(
    tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    sock_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(sock_path))
    listener.settimeout(20)
    env = {"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "1500000"}
    config = folder_config(tmp_path, smtp_server, wedged_seconds=3)
    log = tmp_path / "d.log"
    proc = start_daemon(config, log, env=env)
    try:
        heard = [listener.recv(4096).decode() for _ in range(4)]
        assert heard[0].startswith("READY=1"), heard
        assert "WATCHDOG=1" in heard, heard
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log_of(log)
        while "STOPPING=1" not in (last := listener.recv(4096).decode()):
            pass
        assert last == "STOPPING=1"

        # The SMTP server holds every session at RCPT, longer than wedged_seconds.
        smtp_server.stall("rcpt")
        with transaction(Desk.open(load_settings(config)).factory) as session:
            enqueue(session, kind="ack", dedupe_key="wedge", ticket=None, message=mail(),
                    now=datetime.now(UTC))
        proc = start_daemon(config, log, env=env)
        assert proc.wait(60) == 70, log_of(log)
        assert "outbox is wedged" in log_of(log)
    finally:
        smtp_server.accept()
        listener.close()
        if proc.poll() is None:
            proc.kill()
