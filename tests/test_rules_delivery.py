"""The delivery state of an outbox row, and what a delivery report (RFC 3464) says."""

from __future__ import annotations

from madoguchi.ticketing.rules.delivery import (
    INTERRUPTED,
    UNCONFIRMED,
    DeliveryState,
    delivery_state,
    parse_delivery_status,
)


def test_each_outbox_status_shows_as_the_state_staff_read() -> None:
    assert delivery_state("pending", 0, None, False) is DeliveryState.QUEUED
    assert delivery_state("pending", 2, "451 try later", False) is DeliveryState.RETRYING
    assert delivery_state("sending", 1, None, False) is DeliveryState.SENDING
    assert delivery_state("delivering", 1, None, False) is DeliveryState.SENDING
    assert delivery_state("sent", 1, None, False) is DeliveryState.SENT
    assert delivery_state("sent", 1, None, True) is DeliveryState.BOUNCED
    assert delivery_state("failed", 1, "server: 550 no", False) is DeliveryState.FAILED
    assert delivery_state("failed", 1, INTERRUPTED, False) is DeliveryState.UNKNOWN
    assert delivery_state("failed", 1, UNCONFIRMED + " (timed out)", False) \
        is DeliveryState.UNKNOWN
    assert delivery_state("cancelled", 0, None, False) is DeliveryState.CANCELLED


REPORT = (
    "Reporting-MTA: dns; mx.example.jp\r\n"
    "Original-Message-ID: <T-2026-000001.reply.ab@desk.example.jp>\r\n"
    "\r\n"
    "Final-Recipient: rfc822; a@example.jp\r\n"
    "Action: failed\r\n"
    "Status: 5.1.1 (bad mailbox)\r\n"
    "Diagnostic-Code: smtp; 550 5.1.1 <a@example.jp>:\r\n"
    "  Recipient address rejected: User unknown\r\n"
    "\r\n"
    "Final-Recipient: rfc822; b@example.jp\r\n"
    "Action: delayed\r\n"
    "Status: 4.4.7\r\n"
)


def test_a_report_names_the_failed_recipient_with_its_status_and_the_servers_words() -> None:
    report = parse_delivery_status(REPORT)
    assert report.original_message_id == "T-2026-000001.reply.ab@desk.example.jp"
    assert [r.recipient for r in report.recipients] == ["a@example.jp", "b@example.jp"]
    assert [r.recipient for r in report.failed] == ["a@example.jp"]
    assert report.undelivered
    summary = report.summary()
    assert "a@example.jp 5.1.1" in summary and "User unknown" in summary  # folded line joined
    assert "b@example.jp" not in summary


def test_a_delay_or_success_report_is_no_bounce() -> None:
    delayed = parse_delivery_status("Reporting-MTA: dns; mx\n\nFinal-Recipient: rfc822; a@x.jp\n"
                                    "Action: delayed\nStatus: 4.4.7\n")
    assert not delayed.undelivered
    delivered = parse_delivery_status("Final-Recipient: rfc822; a@x.jp\nAction: delivered\n"
                                      "Status: 2.0.0\n")
    assert not delivered.undelivered


def test_a_bounce_without_readable_fields_still_counts_as_undelivered() -> None:
    report = parse_delivery_status("")
    assert report.undelivered and report.recipients == () and "不達" in report.summary()
    # A status of 5.x.x without an action is a failure too.
    assert parse_delivery_status("Final-Recipient: rfc822; a@x.jp\nStatus: 5.2.2\n").failed
