"""The live desk's pure parts: version tokens, who a change wakes, the places of streams."""

from __future__ import annotations

import asyncio

from starlette.types import Message, Receive, Scope, Send

from madoguchi.ticketing.change_feed import ANYTHING, PRESENCE, TICKET, Change, _parse
from madoguchi.ticketing.presence import Viewer
from madoguchi.ticketing.versions import Changes, Version
from madoguchi.web.live import others_text
from madoguchi.web.live_hub import LiveHub, Subscriber
from madoguchi.web_guard import ConcurrencyLimit


def test_a_version_token_reads_back_and_a_mangled_one_reads_as_none() -> None:
    v = Version(123, "pending", 7, "abcdef0123456789")
    assert Version.decode(v.encode()) == v
    for bad in ("", "x", "1.open.2", "a.open.2.d", "1.open.b.d", "1.open.2.d.e"):
        assert Version.decode(bad) is None
    assert not Changes() and Changes(other=True) and Changes(status=("open", "pending"))


def test_a_notify_payload_reads_as_the_changes_it_names() -> None:
    assert _parse("ticket:1,22,333") == [Change(TICKET, 1), Change(TICKET, 22),
                                         Change(TICKET, 333)]
    assert _parse("presence:5") == [Change(PRESENCE, 5)]
    assert _parse("ticket:") == []


def test_a_change_wakes_the_pages_it_concerns_only() -> None:
    async def run() -> None:
        queue, mine, other = Subscriber(None), Subscriber(5), Subscriber(6)
        for sub in (queue, mine, other):
            sub.offer([Change(TICKET, 5), Change(PRESENCE, 5)])
        assert await queue.wait(0.1) == {TICKET}  # presence is no change of the queue
        assert await mine.wait(0.1) == {TICKET, PRESENCE}
        assert await other.wait(0.05) == set()
        other.offer([ANYTHING])  # the feed reconnected: anything may have changed
        assert await other.wait(0.1) == {TICKET}
        assert await mine.wait(0.05) == set()  # told once

    asyncio.run(run())


def test_the_others_on_a_ticket_are_named_without_oneself() -> None:
    viewers = [Viewer(1, "佐藤 彩香", False), Viewer(2, "鈴木 部長", True),
               Viewer(3, "田中 一郎", False)]
    assert others_text(viewers, 1) == "鈴木 部長 が返信を入力中、田中 一郎 が表示中"
    assert others_text(viewers[:1], 1) == ""


def test_open_streams_do_not_take_the_places_of_requests() -> None:
    release = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"].startswith("/live/"):
            await release.wait()  # a stream stays open
        await send({"type": "http.response.body", "body": b""})

    async def call(limit: ConcurrencyLimit, path: str) -> int:
        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        async def receive() -> Message:
            return {"type": "http.request"}

        scope = {"type": "http", "path": path, "client": ("10.0.0.1", 1), "headers": []}
        await limit(scope, receive, send)
        return int(sent[0]["status"])

    async def run() -> None:
        limit = ConcurrencyLimit(app, 1, 1, live=3, live_per_client=2)
        streams = [asyncio.create_task(call(limit, "/live/queue")) for _ in range(3)]
        await asyncio.sleep(0.05)
        assert limit.live.active == 2 and limit.active == 0
        assert await call(limit, "/queue") == 200  # the one request place is free
        release.set()
        assert sorted(await asyncio.gather(*streams)) == [200, 200, 503]  # 2 per client
        assert limit.live.active == 0

    asyncio.run(run())


def test_the_queues_hear_a_burst_of_changes_once_and_then_no_oftener_than_the_spacing() -> None:
    async def run() -> None:
        hub = LiveHub(None, 1.0, queue_coalesce=0.05, queue_every=0.4)  # type: ignore[arg-type]
        hub._loop = asyncio.get_running_loop()  # as subscribe sets it (no listener here)
        queues, ticket = [Subscriber(None), Subscriber(None)], Subscriber(5)
        hub.subscribers |= {*queues, ticket}
        for n in range(20):  # a batch of mail: twenty notifications
            hub._dispatch([Change(TICKET, 100 + n)])
        hub._dispatch([Change(TICKET, 5)])
        assert await ticket.wait(0.01) == {TICKET}  # a ticket's page at once
        assert queues[0].kinds == set()  # the queues after the coalescing pause
        assert [await q.wait(2.0) for q in queues] == [{TICKET}, {TICKET}]
        told = asyncio.get_running_loop().time()
        hub._dispatch([Change(TICKET, 7)])  # soon after: told at the spacing's end
        assert await queues[0].wait(0.2) == set()
        assert await queues[0].wait(2.0) == {TICKET}
        assert asyncio.get_running_loop().time() - told >= 0.35
        hub._dispatch([Change(PRESENCE, 5)])  # presence is no change of the queue
        assert await queues[1].wait(0.5) == {TICKET}  # the one told above, not read yet
        assert await queues[1].wait(0.6) == set()

    asyncio.run(run())
