"""Previews of customers' image and PDF attachments: a PNG the desk drew (``ocr.preview``).

The PNG is kept beside the blob store under the attachment's sha256 (it is
derived: deleting the folder costs only the drawing again). A file that
cannot be drawn answers 404, and the page shows its download link as before.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from starlette.responses import FileResponse, Response

from madoguchi.ocr.preview import PreviewError, preview_png
from madoguchi.ticketing import access_log
from madoguchi.ticketing.models import Attachment
from madoguchi.web.http import SANDBOX_CSP, Ctx, endpoint, error_page
from madoguchi.web.i18n import gettext as _

log = logging.getLogger("madoguchi.web")


def _cached(folder: Path, sha256: str, draw: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{sha256}.png"
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        fh.write(draw)
    os.replace(tmp, target)
    return target


@endpoint()
def attachment_preview(ctx: Ctx) -> Response:
    a = ctx.db.get(Attachment, ctx.request.path_params["id"])
    source = ctx.storage.blobs.path_for(a.sha256) if a is not None else None
    if a is None or source is None or not source.is_file():
        return error_page(ctx.state, ctx.request, 404, _("添付ファイルが見つかりません。"))
    access_log.opened(ctx.db, ctx.user, a.message.ticket_id, "preview", ctx.now)
    folder = Path(ctx.settings.storage_dir) / "previews"
    path = folder / f"{a.sha256}.png"
    if not path.is_file():
        try:
            path = _cached(folder, a.sha256, preview_png(source.read_bytes(), ctx.settings.fax))
        except PreviewError as exc:
            log.info("no preview of attachment %s: %s", a.id, exc)
            return error_page(ctx.state, ctx.request, 404, _("プレビューを作成できません。"))
    return FileResponse(path, media_type="image/png", headers={
        "Content-Security-Policy": SANDBOX_CSP,
        "Cache-Control": "private, max-age=3600",
    })
