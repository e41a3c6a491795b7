"""Does the desk's own mail server vouch for the sender? (RFC 8601 Authentication-Results)

A forged From of a registered contact must not be trusted. The desk's MTA
writes an Authentication-Results header naming itself (its authserv-id);
when that header says DMARC failed — or, without DMARC, SPF failed and no
DKIM signature passed — the sender is treated as unregistered: the ticket
is still opened, flagged, and staff decide. Headers from other servers are
ignored: anyone can write one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_RESULT = re.compile(r"\b(dmarc|spf|dkim)\s*=\s*([a-z]+)", re.IGNORECASE)


def sender_fails_authentication(results: list[str], authserv_ids: list[str]) -> bool:
    """True when a trusted Authentication-Results header says the sender is forged."""
    trusted = {a.lower() for a in authserv_ids}
    if not trusted:
        return False
    for header in results:
        serv = header.split(";", 1)[0].strip().split()[0].lower() if header.strip() else ""
        if serv not in trusted:
            continue
        found: dict[str, set[str]] = {}
        for method, verdict in _RESULT.findall(header):
            found.setdefault(method.lower(), set()).add(verdict.lower())
        if "fail" in found.get("dmarc", set()):
            return True
        if "dmarc" not in found and "fail" in found.get("spf", set()) and (
            "pass" not in found.get("dkim", set())
        ):
            return True
    return False


def _serv_id(header: str) -> str:
    return header.split(";", 1)[0].strip().split()[0].lower() if header.strip() else ""


def desk_results(headers: Sequence[tuple[str, str]], authserv_ids: list[str],
                 own_received: int = 1) -> list[str]:
    """The Authentication-Results headers the desk's own mail system wrote, top first.

    ``headers`` in their order in the message. A header naming a trusted
    authserv-id counts only above the ``own_received``-th Received header
    from the top: the desk's MTA adds its results as it receives the
    message, so anything lower was in the message before — written by the
    sender, whatever server it names. (An MTA that puts its results below
    its own Received header needs ``own_received`` one higher, and should
    remove incoming headers that name it, as RFC 8601 §5 asks.)
    """
    trusted = {a.lower() for a in authserv_ids}
    found: list[str] = []
    received = 0
    for name, value in headers:
        lower = name.lower()
        if lower == "received":
            received += 1
            if received >= own_received:
                break
        elif lower == "authentication-results" and _serv_id(value) in trusted:
            found.append(value)
    return found


def desk_vouches(results: list[str]) -> bool:
    """The desk's own results say DMARC passed: the From address is the sender's domain's."""
    for header in results:
        verdicts = {(m.lower(), v.lower()) for m, v in _RESULT.findall(header)}
        if ("dmarc", "pass") in verdicts:
            return True
    return False
