"""``madoguchi search QUERY [--format jsonl] [filters]``: the desk's search from the command line.

Registered by madoguchi/cli.py::

    from madoguchi.search_cli import search_command
    app.command("search")(search_command)

Thin over ``ticketing.search``: the same tickets, in the same order, as the
desk's search page (one line per ticket). The filters are the page's:
``--status``, ``--channel``, ``--product``, ``--from``/``--to`` (received
date, YYYY-MM-DD, the desk's time zone), ``--assignee`` (a login, or
``none`` for unassigned).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from madoguchi.config import Settings
from madoguchi.ticketing.search import SearchHit, search
from madoguchi.ticketing.search_filters import parse_filters
from madoguchi.ticketing.storage import Storage


def _record(hit: SearchHit) -> dict[str, object]:
    return {
        "number": hit.ticket.number,
        "subject": hit.ticket.subject,
        "snippet": "".join(hit.snippet),
        "status": hit.ticket.status.value,
        "message_id": hit.message.id,
        "received_at": hit.message.received_at.isoformat(),
    }


def search_command(
    ctx: typer.Context,
    query: str,
    format: Annotated[str, typer.Option("--format", help="table or jsonl")] = "table",
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    status: Annotated[str, typer.Option("--status", help="open, pending or closed")] = "",
    channel: Annotated[str, typer.Option("--channel", help="email, fax or phone")] = "",
    product: Annotated[str, typer.Option("--product")] = "",
    received_from: Annotated[str, typer.Option("--from", help="received on or after")] = "",
    received_to: Annotated[str, typer.Option("--to", help="received on or before")] = "",
    assignee: Annotated[str, typer.Option("--assignee", help="a login, or none")] = "",
) -> None:
    """Tickets whose messages contain every word of QUERY, newest first."""
    settings = ctx.obj
    if not isinstance(settings, Settings):
        raise typer.BadParameter("no settings: run through the madoguchi command")
    if format not in ("table", "jsonl"):
        typer.echo("madoguchi: --format is table or jsonl", err=True)
        raise typer.Exit(2)
    filters, problem = parse_filters({
        "status": status, "channel": channel, "product": product, "from": received_from,
        "to": received_to, "assignee": assignee}, settings.tz)
    if problem:
        typer.echo(f"madoguchi: {problem.text()}", err=True)
        raise typer.Exit(2)
    storage = Storage.open(settings)
    try:
        with storage.factory() as session:
            result = search(session, query, limit=limit, filters=filters)
            records = [_record(h) for h in result.hits]
    finally:
        storage.close()
    if result.problem:
        typer.echo(f"madoguchi: {result.problem.text()}", err=True)
        raise typer.Exit(2)
    for r in records:
        if format == "jsonl":
            typer.echo(json.dumps(r, ensure_ascii=False))
        else:
            typer.echo(f"{r['number']}  {r['status']:<8} {r['subject']}\n    {r['snippet']}")
    if format == "table":
        more = "以上" if result.next_before is not None else ""
        typer.echo(f"{len(records)}件{more}")
