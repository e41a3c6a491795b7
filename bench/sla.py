"""How long the first-response deadlines of 1,000,000 tickets take to compute.

    .venv/bin/python bench/sla.py > bench/results/sla.txt

Received times come from one seeded RNG, spread evenly over two years
(2025-2026: nights, weekends, Golden Week, Silver Week, the year-end break),
as the pipeline holds them: aware UTC from the database, or Asia/Tokyo. Each
policy is timed over every ticket, ``--repeat`` times; the figures are the
median run's wall-clock seconds (and CPU seconds, steadier on a busy machine).
One process: a deadline costs a few microseconds, less than sending a datetime
to another process and back, so a second core does not help.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time as clock
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from madoguchi.config.business import CalendarSettings, SlaSettings
from madoguchi.ticketing.calendar import BusinessCalendar
from madoguchi.ticketing.sla import FirstResponsePolicy, first_response_due

TOKYO = ZoneInfo("Asia/Tokyo")
FIRST = datetime(2025, 1, 1, tzinfo=TOKYO)
LAST = datetime(2027, 1, 1, tzinfo=TOKYO)
UTC_SHARE = 0.7


def received_times(count: int, seed: int) -> list[datetime]:
    rng = random.Random(seed)
    start, span = FIRST.timestamp(), LAST.timestamp() - FIRST.timestamp()
    return [
        datetime.fromtimestamp(
            round(start + rng.random() * span, 6), UTC if rng.random() < UTC_SHARE else TOKYO
        )
        for _ in range(count)
    ]


def timed(
    received: list[datetime], calendar: BusinessCalendar, policy: FirstResponsePolicy
) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one pass over every ticket."""
    wall, cpu = clock.perf_counter(), clock.process_time()
    for moment in received:
        first_response_due(moment, calendar, policy)
    return clock.perf_counter() - wall, clock.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20260401)
    args = parser.parse_args()

    received = received_times(args.tickets, args.seed)
    settings = CalendarSettings()
    started = clock.perf_counter()
    calendar = BusinessCalendar.from_settings(settings, "Asia/Tokyo")
    default = FirstResponsePolicy.from_settings(SlaSettings())
    first_response_due(FIRST, calendar, default)
    first_response_due(LAST, calendar, default)
    build = clock.perf_counter() - started
    policies = [
        ("next_business_day_close 17:00", default),
        ("business_hours 4", FirstResponsePolicy.from_override({"hours": 4}, default)),
        (
            "24x7 business_hours 4",
            FirstResponsePolicy.from_override({"calendar": "24x7", "hours": 4}, default),
        ),
    ]
    closed_days = sum(not calendar.is_business_day(m.astimezone(TOKYO).date()) for m in received)
    after_hours = sum(not calendar.is_open(m) for m in received)

    print(f"first-response deadlines: {args.tickets:,} tickets, seed {args.seed}")
    print(
        f"received {FIRST:%Y-%m-%d}..{LAST:%Y-%m-%d} (excl.), evenly; "
        f"{UTC_SHARE:.0%} given in UTC, the rest in Asia/Tokyo"
    )
    print(
        f"received on closed days {closed_days / args.tickets:.1%}, "
        f"outside business hours {after_hours / args.tickets:.1%}"
    )
    print(f"calendar: {calendar!r}, national holidays, closures {settings.closures}")
    print(
        f"python {platform.python_version()} ({platform.machine()}), 1 process, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; "
        f"calendar build 2025-2027 on first use {build:.3f} s"
    )
    print()
    print(
        f"{'policy':<31} {'tickets':>10} {'seconds':>8} {'µs/ticket':>10} {'cpu s':>6}"
        "   wall s of each run"
    )
    for name, policy in policies:
        first_response_due(received[0], calendar, policy)
        runs = [timed(received, calendar, policy) for _ in range(args.repeat)]
        wall = statistics.median(run[0] for run in runs)
        cpu = statistics.median(run[1] for run in runs)
        print(
            f"{name:<31} {args.tickets:>10,} {wall:>8.2f} {wall / args.tickets * 1e6:>10.2f}"
            f" {cpu:>6.2f}   {' '.join(f'{run[0]:.2f}' for run in runs)}"
        )


if __name__ == "__main__":
    main()
