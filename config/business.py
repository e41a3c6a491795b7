"""Settings of the business calendar and the first-response policy."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class CalendarSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SlaSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
