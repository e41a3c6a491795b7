from __future__ import annotations

import pytest

from madoguchi.ticketing.rules.authenticity import sender_fails_authentication

MX = ["mx.example.co.jp"]


@pytest.mark.parametrize(
    ("header", "forged"),
    [
        ("mx.example.co.jp; dmarc=fail (p=reject) header.from=sakura.example.jp", True),
        ("mx.example.co.jp; spf=fail smtp.mailfrom=sakura.example.jp", True),
        ("mx.example.co.jp; spf=fail smtp.mailfrom=x; dkim=pass header.d=sakura.example.jp",
         False),
        ("mx.example.co.jp; dmarc=pass; spf=pass; dkim=pass", False),
        ("mx.example.co.jp; spf=softfail smtp.mailfrom=x", False),
        ("evil.example.net; dmarc=pass", False),
        ("evil.example.net; dmarc=fail", False),  # not our server: not believed either way
    ],
)
def test_only_the_desks_own_server_is_believed(header: str, forged: bool) -> None:
    assert sender_fails_authentication([header], MX) is forged


def test_without_configured_servers_nothing_is_judged() -> None:
    assert not sender_fails_authentication(["mx.example.co.jp; dmarc=fail"], [])
