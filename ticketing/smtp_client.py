"""The SMTP side of delivering one outbox row: connect, the envelope, DATA, and failures.

``transact`` is ``smtplib.SMTP.sendmail`` in its steps, with a question
asked before the DATA command (the outbox's fence, ``OutboxSender``);
``classify`` says what an exception smtplib raised means for the row:
permanent or not, and whether it is the connection's fault (then the
round ends: the server is unwell, and the other rows wait for the next).
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import ssl
from collections.abc import Callable
from time import monotonic

from madoguchi.config.mail import SmtpSettings
from madoguchi.ticketing.oauth import OAuthError, sasl_response, token_source


def open_smtp(smtp: SmtpSettings) -> smtplib.SMTP:
    """A connection to the configured server: TLS as configured, logged in if configured."""
    context = ssl.create_default_context(cafile=smtp.ca_file)
    conn: smtplib.SMTP
    if smtp.security == "ssl":
        conn = smtplib.SMTP_SSL(
            smtp.host, smtp.port, local_hostname=smtp.helo_name,
            timeout=smtp.timeout_seconds, context=context,
        )
    else:
        conn = smtplib.SMTP(
            smtp.host, smtp.port, local_hostname=smtp.helo_name, timeout=smtp.timeout_seconds
        )
    try:
        conn.ehlo()
        if smtp.security == "starttls":
            # Raises SMTPNotSupportedError when not offered: never fall back to plain.
            conn.starttls(context=context)
            conn.ehlo()
        if smtp.oauth is not None:
            _oauth_sign_in(conn, smtp)
        elif smtp.username:
            try:
                conn.login(smtp.username, smtp.password())
            except UnicodeEncodeError as exc:
                raise smtplib.SMTPException(
                    "smtp: smtplib logs in with ASCII user names and passwords only"
                ) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _oauth_sign_in(conn: smtplib.SMTP, smtp: SmtpSettings) -> None:
    """AUTH XOAUTH2/OAUTHBEARER; a refused token is fetched again and tried once more."""
    assert smtp.oauth is not None and smtp.username
    tokens = token_source("smtp", smtp.oauth)
    user, mechanism = smtp.username, smtp.oauth.mechanism
    for attempt in (1, 2):
        try:
            token = tokens.token()
        except OAuthError as exc:
            # Not this message's fault: the round ends and the row waits.
            raise smtplib.SMTPAuthenticationError(530, str(exc)) from exc
        initial = sasl_response(mechanism, user, token)

        def answer(challenge: bytes | None = None, initial: str = initial) -> str:
            # After a refusal the server sends its error as a challenge: an
            # empty answer ends the exchange (RFC 7628 3.2.3).
            return initial if challenge is None else ""

        try:
            conn.auth(mechanism, answer, initial_response_ok=True)
            return
        except smtplib.SMTPAuthenticationError:
            tokens.invalidate()
            if attempt == 2:
                raise


class SmtpFailure(Exception):
    """Why a row was not delivered: for good or not, the connection's fault or not.

    ``unconfirmed``: the whole message was sent and no answer came (timed
    out, or the connection dropped): the server may have it.
    """

    def __init__(self, text: str, *, permanent: bool, connection: bool,
                 unconfirmed: bool = False) -> None:
        super().__init__(text)
        self.permanent = permanent
        self.connection = connection
        self.unconfirmed = unconfirmed


class DeliveryUnconfirmed(Exception):
    """The message's end (the final dot) was sent, and no reply to it came."""


def reply_text(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return f"{code} {' '.join(text.split())}"


def classify(exc: Exception) -> SmtpFailure:
    """Our view of what smtplib raised: permanent or not, the connection's fault or not."""
    if isinstance(exc, DeliveryUnconfirmed):
        # Not sent again (the server may deliver it): left to staff.
        return SmtpFailure(str(exc), permanent=True, connection=True, unconfirmed=True)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = [(addr, code, reply_text(code, r)) for addr, (code, r) in
                   exc.recipients.items()]
        return SmtpFailure(
            "recipient refused: " + "; ".join(f"{addr}: {text}" for addr, _c, text in replies),
            permanent=all(500 <= code < 600 for _a, code, _t in replies),
            # 421: the server closes the connection (smtplib has closed it too).
            connection=any(code == 421 for _a, code, _t in replies),
        )
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return SmtpFailure(f"connection dropped: {exc}", permanent=False, connection=True)
    if isinstance(exc, smtplib.SMTPResponseException):
        text = reply_text(exc.smtp_code, exc.smtp_error)
        if exc.smtp_code == 421 or isinstance(
            exc, smtplib.SMTPConnectError | smtplib.SMTPHeloError | smtplib.SMTPAuthenticationError
        ):
            # The server's state or our configuration, not this message.
            return SmtpFailure(f"connection: {text}", permanent=False, connection=True)
        return SmtpFailure(f"server: {text}", permanent=500 <= exc.smtp_code < 600,
                        connection=False)
    if isinstance(exc, OSError):  # smtplib's other exceptions are OSErrors too
        # Refused, timed out, reset, TLS errors, STARTTLS not offered.
        return SmtpFailure(f"connection: {type(exc).__name__}: {exc}", permanent=False,
                        connection=True)
    # Anything else is a bug: the row stays as it is and its lease decides
    # (sent again if DATA had not begun, else left for staff).
    raise exc


def transact(
    conn: smtplib.SMTP, mail_from: str, rcpt_to: list[str], raw: bytes,
    before_data: Callable[[], bool], *, data_timeout: float,
) -> tuple[dict[str, tuple[int, bytes]], str] | None:
    """``conn.sendmail`` in its steps, asking ``before_data`` before the DATA command.

    The reply to the end of the message is awaited ``data_timeout`` seconds;
    without it, ``DeliveryUnconfirmed`` (the server may have the message).

    Returns the refused recipients, as ``sendmail`` does, and the server's
    answer to the message ("250 2.0.0 Ok: queued as …"), or None when
    ``before_data`` said no (the SMTP transaction is then still open: the
    caller resets it). Raises as ``sendmail`` does.
    """
    conn.ehlo_or_helo_if_needed()
    options = [f"size={len(raw)}"] if conn.does_esmtp and conn.has_extn("size") else []
    code, reply = conn.mail(mail_from, options)
    if code != 250:
        _abandon(conn, code)
        raise smtplib.SMTPSenderRefused(code, reply, mail_from)
    refused: dict[str, tuple[int, bytes]] = {}
    for addr in rcpt_to:
        code, reply = conn.rcpt(addr)
        if code not in (250, 251):
            refused[addr] = (code, reply)
        if code == 421:
            conn.close()
            raise smtplib.SMTPRecipientsRefused(refused)
    if len(refused) == len(rcpt_to):
        _abandon(conn, 0)
        raise smtplib.SMTPRecipientsRefused(refused)
    if not before_data():
        return None
    code, reply = _data(conn, raw, data_timeout)
    if code != 250:
        _abandon(conn, code)
        raise smtplib.SMTPDataError(code, reply)
    return refused, reply_text(code, reply)[:500]


def _data(conn: smtplib.SMTP, raw: bytes, data_timeout: float) -> tuple[int, bytes]:
    """``conn.data(raw)``, the reply to the final dot awaited ``data_timeout`` seconds.

    A failure before the final dot is sent is smtplib's own (the server holds
    no complete message: sent again later); from the dot on, no reply is
    ``DeliveryUnconfirmed``.
    """
    code, reply = conn.docmd("data")
    if code != 354:
        raise smtplib.SMTPDataError(code, reply)
    content = re.sub(rb"(?m)^\.", b"..", raw)  # dot-stuffing, as smtplib does
    if content[-2:] != b"\r\n":
        content += b"\r\n"
    conn.send(content + b".\r\n")
    started = monotonic()
    try:
        if conn.sock is not None:
            conn.sock.settimeout(data_timeout)
        return conn.getreply()
    except (OSError, smtplib.SMTPServerDisconnected) as exc:
        conn.close()
        raise DeliveryUnconfirmed(
            f"no answer to the end of the message after {monotonic() - started:.0f} s "
            f"({type(exc).__name__}: {exc or 'connection dropped'})") from exc
    finally:
        if conn.sock is not None:
            conn.sock.settimeout(conn.timeout)


def _abandon(conn: smtplib.SMTP, code: int) -> None:
    """End the SMTP transaction after a refusal, as ``sendmail`` does (421: the server left)."""
    if code == 421:
        conn.close()
        return
    # Disconnected: the next use of the connection will say so.
    with contextlib.suppress(smtplib.SMTPServerDisconnected):
        conn.rset()
