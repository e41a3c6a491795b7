"""How long the desk keeps personal data, per kind (``[retention]``; 0: for good).

TOML, all keys optional::

    [retention]
    raw_mail_days = 365          # the original bytes of mail and FAX documents, after receipt
                                 # (the text staff read stays with the ticket)
    attachments_days = 1095      # attachments of tickets closed this long ago
    quarantine_days = 90         # quarantined input, after it was set aside
    closed_tickets_days = 1825   # tickets closed this long ago are anonymised in place
    access_log_days = 365        # who opened which ticket; sign-in attempts likewise
    sessions_days = 30           # ended web sessions

The daemon's ``retention`` job applies it once a day (``ticketing.retention``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RetentionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    raw_mail_days: int = Field(365, ge=0)
    attachments_days: int = Field(1095, ge=0)
    quarantine_days: int = Field(90, ge=0)
    closed_tickets_days: int = Field(1825, ge=0)
    access_log_days: int = Field(365, ge=0)
    sessions_days: int = Field(30, ge=0)
    # The local time of the daily run.
    run_at: str = Field("04:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
