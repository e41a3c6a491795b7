"""Settings of outgoing mail: the SMTP server and the acknowledgement."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class SmtpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AckSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
