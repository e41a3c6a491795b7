"""One FAX limits type: the ``[fax]`` settings are the limits the reader works within."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from madoguchi.config import load_settings
from madoguchi.config.settings import FaxLimits, FaxSettings
from madoguchi.ingest.fax import fax_config
from madoguchi.ocr.errors import FaxDocumentError
from madoguchi.ocr.pages import load_pages


def _tiff(pages: int) -> bytes:
    frame = Image.new("1", (1728, 1145), 1)
    buf = io.BytesIO()
    frame.save(buf, format="TIFF", compression="group4", save_all=True,
               append_images=[frame] * (pages - 1), dpi=(204, 98))
    return buf.getvalue()


def test_the_fax_section_and_the_reader_share_their_defaults() -> None:
    assert FaxSettings().limits == FaxLimits()
    assert FaxLimits().model_dump() == {
        "max_pages": 50, "max_pixels": 40_000_000, "timeout_seconds": 120.0, "pdf_dpi": 200,
    }


def test_limits_from_the_toml_file_and_the_environment_reach_the_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "madoguchi.toml"
    config.write_text("[fax]\nmax_pages = 3\npdf_dpi = 150\n", encoding="utf-8")
    monkeypatch.setenv("MADOGUCHI_FAX__TIMEOUT_SECONDS", "30")
    limits = fax_config(load_settings(config)).limits
    assert limits == FaxLimits(max_pages=3, pdf_dpi=150, timeout_seconds=30)
    assert len(load_pages(_tiff(3), "three.tif", limits)) == 3
    with pytest.raises(FaxDocumentError) as caught:
        load_pages(_tiff(4), "four.tif", limits)
    assert caught.value.reason_code == "too_many_pages"


def test_the_limits_the_reader_is_handed_cannot_change_under_it() -> None:
    limits = FaxSettings(max_pages=5).limits
    with pytest.raises(ValueError, match="frozen"):
        limits.max_pages = 500  # type: ignore[misc]  # the point: pydantic refuses it
