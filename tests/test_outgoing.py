"""Outgoing mail that lands in the inbox: DKIM-signed per sending domain, each product's mail
through its own SMTP server, replies from the product's address, STARTTLS by default.

The SMTP listeners verify signatures with dkimpy; its ``dnsfunc`` answers the
key lookups in place of the DNS.
"""

from __future__ import annotations

import base64
import smtplib
import uuid
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy.orm import Session, sessionmaker

from madoguchi.config import Settings, load_settings
from madoguchi.config.mail import SmtpSettings
from madoguchi.ticketing.db import make_engine, session_factory
from madoguchi.ticketing.models import OutboxMessage, OutboxStatus
from madoguchi.ticketing.outbox import OutboxSender, enqueue
from madoguchi.ticketing.products import Products
from madoguchi.ticketing.replies import sender
from madoguchi.ticketing.signatures import default_text
from madoguchi.ticketing.smtp_client import open_smtp
from tests.smtp_server import SmtpTestServer, dkim_smtp_server

pytestmark = pytest.mark.integration

CHATLUCK, AGCRM = "chatluck.example.jp", "agcrm.example.jp"


def rsa_key(tmp_path: Path, name: str) -> tuple[Path, bytes]:
    """A private key file (0600) and the DNS TXT record of its public key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / f"{name}.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return path, b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, tuple[Path, bytes]]:
    return {CHATLUCK: rsa_key(tmp_path, "chatluck"), AGCRM: rsa_key(tmp_path, "agcrm")}


@pytest.fixture
def dns(keys: dict[str, tuple[Path, bytes]]) -> Callable[..., bytes]:
    records = {f"mado2026._domainkey.{domain}.".encode(): txt
               for domain, (_path, txt) in keys.items()}

    def lookup(name: bytes, timeout: int = 5) -> bytes:
        return records.get(name, b"")

    return lookup


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield session_factory(engine)
    engine.dispose()


def desk_settings(database_url: str, tmp_path: Path, keys: dict[str, tuple[Path, bytes]],
                  chatluck: SmtpTestServer, agcrm: SmtpTestServer) -> Settings:
    products = [
        {"preset": "chatluck", "default": True,
         "acknowledgement": {"from_address": f"support@{CHATLUCK}"},
         "smtp": chatluck.smtp_settings()},
        {"preset": "agcrm", "acknowledgement": {"from_address": f"support@{AGCRM}"},
         "smtp": agcrm.smtp_settings()},
    ]
    return load_settings(
        None, database_url=database_url, storage_dir=tmp_path / "storage", sources=[],
        products=products, smtp=chatluck.smtp_settings(),
        dkim=[{"domain": d, "selector": "mado2026", "key_file": str(path)}
              for d, (path, _txt) in keys.items()])


def mail(from_address: str) -> EmailMessage:
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = f"サポート <{from_address}>"
    msg["To"] = "yamada@sakura-shoji.example.jp"
    msg["Subject"] = "[T-2026-000001] 受付のお知らせ"
    msg["Message-ID"] = f"<T-2026-000001.ack.{uuid.uuid4().hex[:8]}@{from_address.split('@')[1]}>"
    msg["Auto-Submitted"] = "auto-replied"
    msg.set_content("受付番号：T-2026-000001\n", charset="utf-8", cte="base64")
    return msg


def queue(sessions: sessionmaker[Session], msg: EmailMessage, key: str) -> None:
    from datetime import UTC, datetime

    with sessions() as s, s.begin():
        enqueue(s, kind="ack", dedupe_key=key, ticket=None, message=msg,
                now=datetime.now(UTC))


def test_each_products_mail_goes_through_its_own_server_dkim_signed(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path,
    keys: dict[str, tuple[Path, bytes]], dns: Callable[..., bytes],
    sessions: sessionmaker[Session],
) -> None:
    chatluck, agcrm = dkim_smtp_server(request, dns), dkim_smtp_server(request, dns)
    settings = desk_settings(database_url, tmp_path, keys, chatluck, agcrm)
    queue(sessions, mail(f"support@{CHATLUCK}"), "ack:1")
    queue(sessions, mail(f"support@{AGCRM}"), "ack:2")
    queue(sessions, mail(f"support@{CHATLUCK}"), "ack:3")
    report = OutboxSender(settings, sessions).send_due()
    assert len(report.sent) == 3
    assert [b"support@chatluck" in m.raw for m in chatluck.messages] == [True, True]
    assert [b"support@agcrm" in m.raw for m in agcrm.messages] == [True]
    for received in (*chatluck.messages, *agcrm.messages):
        assert received.raw.startswith(b"DKIM-Signature: ")
        assert dkim.verify(received.raw, dnsfunc=dns)
        signed = dkim.DKIM(received.raw)
        assert signed.verify(dnsfunc=dns)
        assert b"auto-submitted" in dict(signed.signature_fields)[b"h"].lower()
        # Changed on the way: the signature no longer holds.
        assert not dkim.verify(received.raw.replace(b"T-2026-000001", b"T-2026-000002"),
                               dnsfunc=dns)


def test_mail_from_a_domain_without_a_key_is_not_signed_and_the_checking_server_refuses_it(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path,
    keys: dict[str, tuple[Path, bytes]], dns: Callable[..., bytes],
    sessions: sessionmaker[Session],
) -> None:
    chatluck, agcrm = dkim_smtp_server(request, dns), dkim_smtp_server(request, dns)
    settings = desk_settings(database_url, tmp_path, keys, chatluck, agcrm)
    queue(sessions, mail("support@other.example.jp"), "ack:1")
    report = OutboxSender(settings, sessions).send_due()
    assert not report.sent and not chatluck.messages
    with sessions() as s:
        row = s.query(OutboxMessage).one()
        assert row.status == OutboxStatus.FAILED and "5.7.20" in (row.last_error or "")


def test_a_missing_key_file_leaves_the_mail_queued_with_the_reason(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path,
    keys: dict[str, tuple[Path, bytes]], dns: Callable[..., bytes],
    sessions: sessionmaker[Session],
) -> None:
    chatluck, agcrm = dkim_smtp_server(request, dns), dkim_smtp_server(request, dns)
    settings = desk_settings(database_url, tmp_path, keys, chatluck, agcrm)
    keys[AGCRM][0].unlink()
    queue(sessions, mail(f"support@{AGCRM}"), "ack:1")
    OutboxSender(settings, sessions).send_due()
    with sessions() as s:
        row = s.query(OutboxMessage).one()
        assert row.status == OutboxStatus.PENDING
        assert "not signed: dkim.agcrm.example.jp.key_file" in (row.last_error or "")
    assert not agcrm.messages


def test_replies_come_from_the_products_address_with_its_signature(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path,
    keys: dict[str, tuple[Path, bytes]], dns: Callable[..., bytes],
) -> None:
    chatluck, agcrm = dkim_smtp_server(request, dns), dkim_smtp_server(request, dns)
    settings = desk_settings(database_url, tmp_path, keys, chatluck, agcrm)
    assert sender(settings, "All Gather CRM") == ("サポートセンター", f"support@{AGCRM}")
    assert sender(settings, None) == ("サポートセンター", f"support@{CHATLUCK}")
    # The product's signature until a supervisor writes its own (ticketing.signatures).
    text = default_text(Products.from_settings(settings).get("All Gather CRM"), settings)
    assert text.endswith(f"担当: {{担当者名}}\nsupport@{AGCRM}")


def test_starttls_is_the_default_and_a_server_without_it_is_refused(
    smtp_server: SmtpTestServer,
) -> None:
    settings = SmtpSettings(host=smtp_server.host, port=smtp_server.port, timeout_seconds=5)
    assert settings.security == "starttls"
    with pytest.raises(smtplib.SMTPNotSupportedError):
        open_smtp(settings)
    assert not smtp_server.messages
