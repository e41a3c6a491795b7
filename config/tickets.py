"""``[tickets]``: the categories offered as tags on the ticket page."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class TicketSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Offered as tick boxes on the ticket page; staff may add free tags beside them.
    tag_categories: list[str] = Field(default_factory=lambda: [
        "操作方法", "障害", "ライセンス", "設定", "データ移行", "バージョンアップ", "要望",
    ])

    @field_validator("tag_categories")
    @classmethod
    def _tags_usable(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            if not tag.strip() or len(tag) > 40 or "," in tag:
                raise ValueError(f"a tag category must be 1-40 characters without ',': {tag!r}")
        return [t.strip() for t in tags]
