"""End to end from a real Dovecot to committed tickets: messages/second and peak RSS.

    .venv/bin/python bench/ingest.py [--messages 1000] [--followups 0.3] [--seed 7]
                                     [--batch 200] [--profile FILE]

Starts a private Dovecot (tests/servers/dovecot.py), APPENDs realistic
Japanese support mail (ISO-2022-JP, Shift_JIS, UTF-8, EUC-JP; 30 % of them
follow-ups that reply to an earlier mail), then times one ``ImapPoller``
run of the real pipeline into a fresh SQLite database: fetch, parse (in a
process pool on both cores), thread, store, commit, move. Only the poll is
timed; loading the mailbox is not.

Wall-clock throughput depends on what else the machine runs (the load
average is printed before and after); the main process's CPU time per
message, and the parse workers', hardly do. ``--profile FILE`` writes a
cProfile of the main thread during the poll (read it with pstats).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import random
import resource
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from madoguchi.app import Desk  # noqa: E402
from madoguchi.config import ImapSource, load_settings  # noqa: E402
from madoguchi.ticketing.customers_csv import import_rows, read_rows  # noqa: E402
from madoguchi.ticketing.db import transaction, upgrade  # noqa: E402
from madoguchi.ticketing.views import export_records  # noqa: E402
from tests.mailfactory import make_mail  # noqa: E402
from tests.servers.dovecot import Dovecot  # noqa: E402

JST = timezone(timedelta(hours=9))
SENDERS = [
    ("山田 太郎", "yamada@sakura-shoji.example.jp", "2031-0001-0008"),
    ("髙橋 花子", "takahashi@sakura-shoji.example.jp", "2031-0001-0008"),
    ("佐藤 一郎", "sato@minato-ss.example.jp", "2031-0002-0007"),
    ("鈴木 次郎", "suzuki@hikari-soft.example.jp", "2031-0003-0006"),
    ("外部 利用者", "someone@freemail.example.com", ""),
]
TOPICS = [
    ("ログインできません",
     "本日朝より一部の社員がログインできなくなりました。\n認証エラーが表示されます。"),
    ("CSV出力の文字化け",
     "顧客一覧をCSVで出力すると①②や㈱が化けます。\nExcelで開いています。"),
    ("バージョンアップ手順",
     "最新版へのバージョンアップ手順を教えてください。\nデータ移行も必要でしょうか。"),
    ("ライセンスの追加", "ユーザーを10名追加したいので、ライセンスキーの発行をお願いします。"),
    ("メール通知が届かない",
     "スケジュールの通知メールが届きません。\nSMTPの設定は変更していません。"),
]
CHARSETS = ["iso-2022-jp", "iso-2022-jp", "shift_jis", "utf-8", "euc-jp"]


def build_mails(n: int, followups: float, rng: random.Random) -> list[tuple[bytes, datetime]]:
    mails: list[tuple[bytes, datetime]] = []
    originals: list[tuple[str, str, str]] = []  # message id, sender, subject
    start = datetime(2026, 11, 2, 8, 0, tzinfo=JST)
    for i in range(n):
        when = start + timedelta(minutes=7 * i)
        charset = rng.choice(CHARSETS)
        if originals and rng.random() < followups:
            parent_id, sender, subject = rng.choice(originals)
            name = next(s[0] for s in SENDERS if s[1] == sender)
            raw = make_mail(
                subject="Re: " + subject,
                body=f"{name}です。追加情報をお送りします（{i}）。\n\n> 以前の内容\n",
                charset=charset,
                from_=(name, sender),
                message_id=f"bench-{i}@example.jp",
                in_reply_to=parent_id,
                references=[parent_id],
                date=when,
            )
        else:
            name, sender, number = rng.choice(SENDERS)
            topic, text = rng.choice(TOPICS)
            subject = f"{topic}（{i}）"
            head = f"サポートサービス番号：{number}\n\n" if number else ""
            raw = make_mail(
                subject=subject,
                body=f"{head}いつもお世話になっております。{name}です。\n{text}\n" * 3,
                charset=charset,
                from_=(name, sender),
                message_id=f"bench-{i}@example.jp",
                date=when,
            )
            originals.append((f"bench-{i}@example.jp", sender, subject))
        mails.append((raw, when))
    return mails


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--followups", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--profile", metavar="FILE", help="write a cProfile of the poll's main thread")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    mails = build_mails(args.messages, args.followups, rng)
    with tempfile.TemporaryDirectory(prefix="madoguchi-bench-") as tmp, Dovecot() as server:
        account = server.add_user("bench")
        with account.client() as client:
            for raw, when in mails:
                client.append("INBOX", raw, msg_time=when)
        url = f"sqlite:///{tmp}/bench.db"
        upgrade(url)
        settings = load_settings(
            None,
            database_url=url,
            storage_dir=Path(tmp) / "storage",
            sources=[],
            limits={"imap_batch_size": args.batch},
        )
        desk = Desk.open(settings)
        with transaction(desk.factory) as session:
            csv_text = (ROOT / "demo" / "customers.csv").read_text(encoding="utf-8")
            import_rows(session, read_rows(csv_text, settings.support_number))
        source = ImapSource(
            kind="imap", name="bench", host=account.host, port=account.port,
            security="plain", username="bench", password_file=account.password_file,
            after_commit="move", move_to="Madoguchi/Processed",
        )
        poller = desk.poller(source)
        # As `madoguchi daemon` does at start-up: worker processes are started
        # before the first poll, not inside the timed one.
        desk.pipeline.start_workers()
        workers = _pool_processes(desk)
        load_before = os.getloadavg()[0]

        profile = cProfile.Profile() if args.profile else None
        worker_cpu_started = _cpu(workers)
        started, cpu_started = time.perf_counter(), time.process_time()
        if profile is not None:
            profile.enable()
        report = poller.poll_once()
        if profile is not None:
            profile.disable()
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        worker_cpu = _cpu(workers) - worker_cpu_started
        load_after = os.getloadavg()[0]
        if profile is not None:
            profile.dump_stats(args.profile)

        children = psutil.Process().children(recursive=True)
        with desk.factory() as session:
            records = list(export_records(session, settings.tz, settings.support_number))
        desk.close()

    self_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    threaded_messages = sum(len(r["messages"]) - 1 for r in records)
    print(f"madoguchi bench/ingest.py  (seed {args.seed}, batch {args.batch}, "
          f"{os.cpu_count()} cores, SQLite)")
    print(f"messages appended to Dovecot : {len(mails)} "
          f"({args.followups:.0%} follow-ups requested)")
    print(f"poll report                  : {report}")
    print(f"tickets / follow-ups threaded: {len(records)} / {threaded_messages}")
    print(f"elapsed (poll, end to end)   : {elapsed:.2f} s")
    print(f"throughput                   : {len(mails) / elapsed:.0f} messages/s  (aim >= 650)")
    print(f"main process CPU per message : {cpu / len(mails) * 1000:.2f} ms  "
          f"(all its threads: pipeline, IMAP fetch)")
    print(f"parse workers CPU per message: {worker_cpu / len(mails) * 1000:.2f} ms  "
          f"({len(workers)} worker processes together)")
    print(f"load average (1 min)         : {load_before:.2f} before the poll, "
          f"{load_after:.2f} after" + ("  (profiled: figures inflated)" if args.profile else ""))
    print(f"peak RSS main process        : {self_peak:.0f} MB  (aim < 300 MB)")
    print(f"peak RSS largest child       : {child_peak:.0f} MB  "
          f"(parse workers; {len(children)} child processes alive at the end)")
    print("(the parse worker pool is started before the timed poll, as the daemon does)")
    assert report.fetched == len(mails), "not every message was fetched"


def _pool_processes(desk: Desk) -> list[psutil.Process]:
    pool = desk.pipeline.preparer._pool
    pids = list(pool._processes) if pool is not None else []  # type: ignore[attr-defined]
    return [psutil.Process(pid) for pid in pids]


def _cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for proc in processes:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:  # a worker lost to a hostile input: not here
            continue
        total += times.user + times.system
    return total


if __name__ == "__main__":
    main()
