"""What the web desk's tests share: a desk with demo customers and staff, signed-in clients,
and small factories for tickets. Imported by the test_web_* modules (no tests here).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from starlette.applications import Starlette
from starlette.testclient import TestClient

from madoguchi.app import Desk
from madoguchi.config import Settings
from madoguchi.config.web import WebSettings
from madoguchi.ingest.inbound import Inbound
from madoguchi.ticketing import store
from madoguchi.ticketing.customers_csv import import_rows, read_rows
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.models import (
    Attachment,
    Channel,
    Direction,
    Flag,
    Message,
    Role,
    Ticket,
    TicketFlag,
    TicketStatus,
)
from madoguchi.web import auth
from madoguchi.web_cli import set_password
from madoguchi.web_server import web_app
from tests.conftest import make_settings
from tests.mailfactory import make_mail

DEMO = Path(__file__).resolve().parent.parent / "demo"
JST = timezone(timedelta(hours=9))
PASSWORD = "correct horse battery"
# A registered contact of a contract in force (demo/customers.csv).
YAMADA = ("山田 太郎", "yamada@sakura-shoji.example.jp")
SAKURA_NUMBER = "2031-0001-0008"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Staff:
    """A browser-like client signed in as one staff user; posts carry the CSRF token."""

    client: TestClient
    csrf: str

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, **kw)

    def post(self, path: str, data: dict[str, str] | None = None, **kw: Any) -> Any:
        return self.client.post(path, data={**(data or {}), "csrf": self.csrf}, **kw)


@dataclass
class WebDesk:
    desk: Desk
    settings: Settings
    web: WebSettings
    app: Starlette
    users: dict[str, int] = field(default_factory=dict)

    def anonymous(self) -> TestClient:
        return TestClient(self.app, follow_redirects=False)

    def sign_in(self, login: str = "agent", password: str = PASSWORD) -> Staff:
        client = TestClient(self.app, follow_redirects=False)
        token = csrf_in(client.get("/login").text)
        r = client.post("/login", data={"login": login, "password": password, "csrf": token,
                                        "next": "/queue"})
        assert r.status_code == 303, r.text
        return Staff(client, csrf_in(client.get("/queue").text))


def csrf_in(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


@pytest.fixture
def quick_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    # Argon2 at its production cost takes ~0.1 s a hash; the tests sign in often.
    monkeypatch.setattr(auth, "_hasher",
                        PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    monkeypatch.setattr(auth, "_dummy_hash", [])


def open_web(settings: Settings, desk: Desk, tmp_path: Path, **web: Any) -> WebDesk:
    rows = read_rows((DEMO / "customers.csv").read_text(encoding="utf-8"),
                     settings.support_number)
    with transaction(desk.factory) as session:
        import_rows(session, rows)
    web_settings = WebSettings(**{
        "secret_key_file": tmp_path / "web-secret",
        "fax_outbound_dir": tmp_path / "fax-out",
        "send_outbox_after_reply": False,
        **web,
    })
    wd = WebDesk(desk, settings, web_settings, web_app(settings, desk=desk, web=web_settings))
    for login, name, role in (("agent", "佐藤 彩香", Role.AGENT),
                              ("boss", "鈴木 部長", Role.SUPERVISOR)):
        wd.users[login] = set_password(desk, login, PASSWORD, name=name, role=role,
                                       create=True).id
    return wd


@pytest.fixture
def webdesk(settings: Settings, desk: Desk, tmp_path: Path, quick_hashing: None) -> WebDesk:
    """The web desk on the parametrised database, demo customers, users agent and boss."""
    return open_web(settings, desk, tmp_path)


@pytest.fixture
def sqlite_webdesk(sqlite_url: str, tmp_path: Path, quick_hashing: None) -> Iterator[WebDesk]:
    """The same on SQLite only, for behaviour that does not depend on the database."""
    settings = make_settings(sqlite_url, tmp_path)
    desk = Desk.open(settings)
    yield open_web(settings, desk, tmp_path)
    desk.close()


@pytest.fixture
def agent(webdesk: WebDesk) -> Staff:
    return webdesk.sign_in("agent")


@pytest.fixture
def boss(webdesk: WebDesk) -> Staff:
    return webdesk.sign_in("boss")


def mail_date() -> datetime:
    """Today, during business hours: within the demo contracts' periods."""
    return datetime.now(JST).replace(hour=10, minute=0, second=0, microsecond=0)


def ingest_mail(desk: Desk, **kw: Any) -> str:
    kw.setdefault("from_", YAMADA)
    kw.setdefault("date", mail_date())
    kw.setdefault("charset", "utf-8")
    kw.setdefault("body",
                  f"サポートサービス番号: {SAKURA_NUMBER}\n\nいつもお世話になっております。\n")
    outcome = desk.pipeline.ingest(Inbound(make_mail(**kw), "test", "ref"))
    assert outcome.ticket_number, outcome
    return outcome.ticket_number


def png(width: int = 120, height: int = 160) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (width, height), 255).save(buf, format="PNG")
    return buf.getvalue()


def make_ticket(
    desk: Desk,
    *,
    subject: str = "テストのお問い合わせ",
    due: datetime | None = None,
    status: TicketStatus = TicketStatus.OPEN,
    channel: Channel = Channel.EMAIL,
    flags: tuple[Flag, ...] = (),
    text: str = "本文です。",
    customer_id: int | None = None,
    assignee_id: int | None = None,
    sender: str = "someone@example.jp",
    page: bytes | None = None,
    received_at: datetime | None = None,
) -> str:
    """A ticket with one inbound message, written directly (not through the pipeline)."""
    now = datetime.now(UTC)
    received = received_at or now - timedelta(hours=1)
    with transaction(desk.factory) as session:
        number = store.next_ticket_number(session, "T", now.year)
        ticket = Ticket(number=number, status=status, channel=channel, subject=subject,
                        received_at=received, first_response_due=due,
                        customer_id=customer_id, assignee_id=assignee_id,
                        closed_at=now if status == TicketStatus.CLOSED else None)
        ticket.flags = [TicketFlag(flag=f) for f in flags]
        session.add(ticket)
        session.flush()
        message = Message(ticket_id=ticket.id, direction=Direction.IN, channel=channel,
                          sender=sender if channel == Channel.EMAIL else "",
                          sender_name="FAX" if channel == Channel.FAX else "見本 太郎",
                          subject=subject, received_at=received, text=text,
                          fax_reading={"problems": ["no support service number found"]}
                          if channel == Channel.FAX else None)
        if page is not None:
            message.attachments.append(Attachment(
                sha256=desk.blobs.put(page), size=len(page), content_type="image/png",
                filename="fax-page-001.png", original_filename=""))
        session.add(message)
    return number


def ticket(desk: Desk, number: str) -> Ticket:
    with desk.factory() as session:
        return session.scalars(
            select(Ticket).where(Ticket.number == number).options(selectinload(Ticket.flags))
        ).one()
