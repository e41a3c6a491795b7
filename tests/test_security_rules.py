"""The pure parts of the desk's defences: password policy, the sign-in throttle, ids,
client addresses, and which Authentication-Results and follow-ups the desk may trust."""

from __future__ import annotations

import pytest

from madoguchi.ticketing.ids import parse_id
from madoguchi.ticketing.rules.authenticity import desk_results, desk_vouches
from madoguchi.ticketing.rules.mail_trust import follow_up_unverified
from madoguchi.ticketing.rules.threading import ThreadAction, ThreadDecision, TicketSnapshot
from madoguchi.web.client import client_address, over_https
from madoguchi.web.passwords import PasswordPolicyError, check_new_password, common_passwords
from madoguchi.web.throttle import Refusal, Reservation, SignInThrottle, address_key

pytestmark = pytest.mark.unit


# -- passwords ----------------------------------------------------------------


@pytest.mark.parametrize("weak", ["1234567890", "password123", "qwertyuiop", "iloveyou12",
                                  "aaaaaaaaaaaa", "Passw0rd!!", "1qaz2wsx3edc"])
def test_common_and_guessable_passwords_are_refused(weak: str) -> None:
    with pytest.raises(PasswordPolicyError) as refused:
        check_new_password(weak, user_inputs=("sato", "ayaka"))
    assert refused.value.japanese  # a sentence for the web form too


@pytest.mark.parametrize("strong", ["correct horse battery", "窓口の朝は早いが猫はまだ寝ている",
                                    "tWq8-pLz3-Vn6r-Ye2x"])
def test_long_uncommon_passwords_are_accepted(strong: str) -> None:
    check_new_password(strong)


def test_the_shipped_list_is_the_twenty_thousand_common_passwords() -> None:
    common = common_passwords()
    assert len(common) > 19_000 and "123456" in common and "1234567890" in common


def test_too_short_too_long_or_padded_passwords_are_refused() -> None:
    for bad in ("short", "x" * 129, " correct horse battery"):
        with pytest.raises(PasswordPolicyError):
            check_new_password(bad)


# -- the throttle -------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _fail(t: SignInThrottle, address: str, account: str | None) -> Reservation | Refusal:
    r = t.reserve(address, account)  # reserved = counted failed until succeeded()
    if isinstance(r, Reservation):
        t.finished(r)  # its password was checked (and wrong)
    return r


def test_an_address_waits_a_doubling_delay_after_its_free_failures() -> None:
    clock = Clock()
    t = SignInThrottle(free_failures=3, base_delay=1, max_delay=60, clock=clock)
    for _ in range(3):
        assert isinstance(_fail(t, "addr:a", None), Reservation)
    waits = []
    for _ in range(8):
        r = _fail(t, "addr:a", None)
        assert isinstance(r, Refusal)
        waits.append(r.retry_after)
        clock.now += r.retry_after
        assert isinstance(_fail(t, "addr:a", None), Reservation)
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60]


def test_after_a_pause_an_address_has_one_check_under_way_at_a_time() -> None:
    clock = Clock()
    t = SignInThrottle(free_failures=3, base_delay=1, max_delay=60, clock=clock)
    for _ in range(3):
        assert isinstance(_fail(t, "addr:a", None), Reservation)
    clock.now += 1
    slow = t.reserve("addr:a", None)  # its Argon2 check outlasts the next pause
    assert isinstance(slow, Reservation)
    clock.now += 30
    assert t.address_wait("addr:a") == 1  # the early look says the same as reserve
    assert isinstance(t.reserve("addr:a", None), Refusal)
    t.finished(slow)
    assert t.address_wait("addr:a") == 0
    assert isinstance(t.reserve("addr:a", None), Reservation)


def test_a_guarded_account_has_one_check_under_way_for_failing_places() -> None:
    clock = Clock()
    t = SignInThrottle(free_failures=2, base_delay=1, clock=clock)
    for i in range(2):
        assert isinstance(_fail(t, f"addr:{i}", "staff:1"), Reservation)
    _fail(t, "addr:x", None)  # addr:x has failed once: not clean
    clock.now += 10
    slow = t.reserve("addr:0", "staff:1")
    assert isinstance(slow, Reservation)
    clock.now += 30
    assert isinstance(t.reserve("addr:x", "staff:1"), Refusal)
    assert isinstance(t.reserve("addr:owner", "staff:1"), Reservation)  # a clean place may
    t.finished(slow)


def test_a_guarded_account_is_open_to_a_clean_address_and_closed_to_guessers() -> None:
    clock = Clock()
    t = SignInThrottle(free_failures=5, clock=clock)
    for i in range(5):  # five places, one guess each: the account is now guarded
        assert isinstance(_fail(t, f"addr:{i}", "staff:1"), Reservation)
    assert isinstance(_fail(t, "addr:0", "staff:1"), Refusal)  # a guesser again
    owner = t.reserve("addr:owner", "staff:1")
    assert isinstance(owner, Reservation)
    t.succeeded(owner)
    assert t.address_wait("addr:owner") == 0


def test_a_reservation_that_succeeds_is_no_failure() -> None:
    t = SignInThrottle(free_failures=2, clock=Clock())
    for _ in range(10):
        r = t.reserve("addr:a", "staff:1")
        assert isinstance(r, Reservation)
        t.succeeded(r)


def test_thirty_thousand_new_names_and_places_keep_the_table_bounded() -> None:
    clock = Clock()
    t = SignInThrottle(max_keys=1000, clock=clock)
    for i in range(30_000):
        t.reserve(f"addr:{i}", f"staff:{i}")
        clock.now += 0.001
    assert t.size() <= 2000
    clock.now += 10_000  # and stale entries are forgotten
    t.reserve("addr:x", None)
    assert t.size() == 1


def test_ipv6_addresses_count_by_their_64_and_mapped_ipv4_as_ipv4() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2")
    assert address_key("::ffff:198.51.100.7") == address_key("198.51.100.7")


# -- ids, addresses ----------------------------------------------------------------


@pytest.mark.parametrize("text,value", [("12", 12), ("²", None), ("١٢", None), ("0", None),
                                        ("9223372036854775807", 2**63 - 1),
                                        ("9223372036854775808", None), ("", None),
                                        ("1e3", None), (" 1", None)])
def test_an_id_is_ascii_digits_within_64_bits(text: str, value: int | None) -> None:
    assert parse_id(text) == value


def _scope(peer: str, **headers: str) -> dict[str, object]:
    return {"client": (peer, 5555), "scheme": "http",
            "headers": [(k.lower().replace("_", "-").encode(), v.encode())
                        for k, v in headers.items()]}


def test_forwarded_headers_count_from_a_trusted_proxy_only() -> None:
    proxies = ("127.0.0.1",)
    spoofed = _scope("127.0.0.1", X_Forwarded_For="6.6.6.6, 198.51.100.7")
    assert client_address(spoofed, proxies) == "198.51.100.7"  # the right-most, as nginx saw
    assert client_address(_scope("203.0.113.9", X_Forwarded_For="10.0.0.1"), proxies) \
        == "203.0.113.9"
    assert client_address(spoofed, ()) == "127.0.0.1"
    assert over_https(_scope("127.0.0.1", X_Forwarded_Proto="https"), proxies, "")
    assert not over_https(_scope("203.0.113.9", X_Forwarded_Proto="https"), proxies, "")
    assert over_https(_scope("203.0.113.9"), (), "https://desk.example.co.jp")


# -- mail trust -----------------------------------------------------------------------

MX = "mx.example.co.jp"
PASS = f"{MX}; dmarc=pass header.from=sakura-shoji.example.jp"


def test_only_results_above_the_desks_received_header_count() -> None:
    ours = [("Authentication-Results", PASS), ("Received", "from a by mx"), ("From", "x")]
    forged = [("Received", "from a by mx"), ("Authentication-Results", PASS), ("From", "x")]
    assert desk_vouches(desk_results(ours, [MX]))
    assert desk_results(forged, [MX]) == []
    assert desk_vouches(desk_results(forged, [MX], own_received=2))
    assert desk_results(ours, []) == []
    assert not desk_vouches([f"{MX}; spf=pass; dkim=pass"])  # no DMARC: From not aligned


def _ticket(participants: set[str], contacts: set[str] = frozenset()) -> TicketSnapshot:  # type: ignore[assignment]
    return TicketSnapshot(1, "T-2026-000001", None, frozenset(participants),
                          frozenset(contacts))


def test_a_follow_up_is_unverified_unless_vouched_for_and_of_the_thread() -> None:
    t = _ticket({"yamada@sakura.example.jp"})
    by_tag = ThreadDecision(ThreadAction.JOIN, t, rule="subject_tag")
    by_ref = ThreadDecision(ThreadAction.JOIN, t, rule="references")
    assert follow_up_unverified(by_tag, "yamada@sakura.example.jp", vouched=False)
    assert not follow_up_unverified(by_tag, "yamada@sakura.example.jp", vouched=True)
    assert follow_up_unverified(by_ref, "stranger@evil.example", vouched=True)
    assert not follow_up_unverified(by_ref, "yamada@sakura.example.jp", vouched=True)
    assert not follow_up_unverified(ThreadDecision(ThreadAction.NEW), "a@b.example", False)


def test_a_flood_of_one_log_line_is_cut_to_a_burst_and_a_count() -> None:
    import logging

    from madoguchi.web_guard import FloodFilter

    clock = Clock()
    flood = FloodFilter(burst=5, period=10, clock=clock)

    def record(host: str) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                                 '%s - "%s %s HTTP/%s" %d', (f"{host}:5555", "POST", "/login",
                                                            "1.1", 429), None)

    passed = [flood.filter(record("127.0.0.9")) for _ in range(1000)]
    assert passed.count(True) == 5
    assert flood.filter(record("127.0.0.1"))  # another client's line still passes
    clock.now += 11
    summary = record("127.0.0.9")
    assert flood.filter(summary) and "[995 more like this left out]" in str(summary.msg)


def test_a_request_beyond_the_concurrency_limit_gets_503_with_the_security_headers() -> None:
    import asyncio

    from madoguchi.web_guard import ConcurrencyLimit

    release = asyncio.Event()

    async def slow(scope: dict[str, object], receive: object, send: object) -> None:
        await release.wait()

    async def run() -> list[dict[str, object]]:
        guard = ConcurrencyLimit(slow, 1)  # type: ignore[arg-type]
        scope = {"type": "http", "path": "/", "headers": [], "client": ("127.0.0.9", 1)}
        sent: list[dict[str, object]] = []

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b""}

        first = asyncio.create_task(guard(scope, receive, send))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        await guard(scope, receive, send)  # type: ignore[arg-type]
        release.set()
        await first
        return sent

    start = asyncio.run(run())[0]
    assert start["status"] == 503
    names = {name for name, _ in start["headers"]}  # type: ignore[attr-defined]
    assert {b"content-security-policy", b"x-frame-options", b"cache-control",
            b"x-content-type-options", b"retry-after"} <= names


# -- the raw sign-in refusal: what it recognises ------------------------------------

_POST = (b"POST /login HTTP/1.1\r\nHost: desk\r\nContent-Length: 9\r\n%s\r\nlogin=abc")


@pytest.mark.parametrize("extra,whole", [
    (b"", True), (b"Content-Type: application/x-www-form-urlencoded\r\n", True),
    (b"Transfer-Encoding: chunked\r\n", False), (b"Expect: 100-continue\r\n", False),
    (b"Connection: close\r\n", False), (b"Content-Length: 9\r\n", False),
    (b"X-Folded: a\r\n b\r\n", False), (b"Bad Header\r\n", False), (b"Upgrade: h2c\r\n", False),
])
def test_the_raw_refusal_takes_only_a_whole_plain_sign_in(extra: bytes, whole: bool) -> None:
    from madoguchi.web.refusal import request_length

    data = _POST % extra
    assert request_length(data + b"GET / HTTP/1.1") == (len(data) if whole else None)
    assert request_length(data[:-1]) is None  # the body not all there yet


@pytest.mark.parametrize("line", [b"POST /login HTTP/1.0", b"POST /login2 HTTP/1.1",
                                  b"GET /login HTTP/1.1", b"POST /%6Cogin HTTP/1.1"])
def test_the_raw_refusal_leaves_any_other_request_line_to_uvicorn(line: bytes) -> None:
    from madoguchi.web.refusal import request_length

    data = (_POST % b"").replace(b"POST /login HTTP/1.1", line)
    assert request_length(data) is None
    assert request_length((_POST % b"").replace(b"/login", b"/login?next=%2Fqueue")) is not None
