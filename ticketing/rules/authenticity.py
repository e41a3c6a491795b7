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
