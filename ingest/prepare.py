"""Making raw bytes ready for the store: parse or OCR, key, and keep the bytes.

Runs before anything touches the database, in worker processes when that
pays: parsing a mail, and even more reading a FAX, is CPU work that overlaps
the main process's database work (bench/ingest.py measures it). A worker
that dies on a hostile document costs only that document, which is
quarantined; the pool is renewed.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from time import monotonic

from madoguchi.config import Limits
from madoguchi.ingest.children import die_with_parent
from madoguchi.ingest.fax import FaxConfig, FaxPrepared, read_document, read_gateway_mail
from madoguchi.ingest.htmltext import sanitize_html
from madoguchi.ingest.inbound import Inbound
from madoguchi.ingest.message import ParsedMessage, ParseError
from madoguchi.ingest.parse import parse_message
from madoguchi.ocr.errors import FaxDocumentError, OcrUnavailableError
from madoguchi.ticketing.blobstore import BlobStore, StorageUnavailableError

log = logging.getLogger("madoguchi.ingest.prepare")

# The desk's faults, not a document's (OCR missing, disk full): the batch is
# left at its source for the next poll, never quarantined.
DESK_FAULTS = (OcrUnavailableError, StorageUnavailableError)

# Between the sanitised HTML parts of one message, as the ticket page shows them.
_HTML_PART_BREAK = "\n<hr>\n"

# Below this many messages a batch is prepared in-process: starting work in
# the pool costs more than it saves.
POOL_THRESHOLD = 16


def dedupe_key(parsed: ParsedMessage, raw: bytes) -> str:
    """The same message read twice gets the same key; two different ones don't.

    Message-ID alone is not enough (some senders reuse or omit it), the raw
    bytes alone are too much (each delivery route adds its own Received:
    lines). The key is the Message-ID together with the headers a sender sets
    and the body as sent, so a re-poll, a second copy through Cc, or a
    re-submitted file is recognised, and a message without Message-ID still
    is.
    """
    sep = b"\r\n\r\n" if b"\r\n\r\n" in raw else b"\n\n"
    body = raw.split(sep, 1)
    digest = hashlib.sha256()
    for part in (
        parsed.message_id or "",
        parsed.from_addr,
        parsed.date.isoformat() if parsed.date else "",
        parsed.subject,
    ):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    digest.update(body[1].replace(b"\r\n", b"\n") if len(body) > 1 else b"")
    return digest.hexdigest()


@dataclass(frozen=True)
class Prepared:
    """A message made ready for the store: parsed, keyed, and its bytes on disk.

    Attachment payloads are dropped once written to the blob store (their
    sha256 and size are kept), so little crosses back from a worker process;
    the HTML parts are sanitised there too (``html``, the parts one after the
    other; ``message.html`` is None).
    """

    digest: str  # sha256 of the raw bytes, already in the blob store
    message: ParsedMessage | None  # None for a FAX document (and for errors)
    error: ParseError | None
    key: str | None = None
    attachment_blobs: tuple[tuple[str, int], ...] = ()  # (sha256, size) per attachment
    fax: FaxPrepared | None = None  # a FAX document, or a gateway mail's FAX
    html: str | None = None  # the message's HTML parts, sanitised


@dataclass(frozen=True)
class PrepareConfig:
    """What a worker needs to prepare a message (small and picklable)."""

    limits: Limits
    fax: FaxConfig
    blob_root: str


Job = tuple[bytes, str | None, str]  # raw bytes, kind, source_ref


def _prepare_chunk(jobs: list[Job], cfg: PrepareConfig | None) -> list[Prepared]:
    if not jobs:
        return []  # a warm-up call: the worker has imported what it needs
    assert cfg is not None
    return [prepare(raw, kind, name, cfg) for raw, kind, name in jobs]


@lru_cache(maxsize=8)
def _blob_store(root: str) -> BlobStore:
    # One per process and root: making one creates its tmp/ folder, a
    # system call that costs as much as parsing a short mail.
    return BlobStore(Path(root))


def prepare(raw: bytes, kind: str | None, name: str, cfg: PrepareConfig) -> Prepared:
    """Parse and store the bytes of one message; runs in a worker process."""
    blobs = _blob_store(cfg.blob_root)
    digest = blobs.put(raw, durable=False)
    try:
        if kind == "fax":
            # A FAX document is its bytes: their sha256 is its dedupe key.
            document = read_document(raw, name, cfg.fax, blobs)
            return Prepared(digest, None, None, digest, fax=document)
        msg = parse_message(raw, cfg.limits)
        fax = read_gateway_mail(msg, cfg.fax, blobs)
    except ParseError as exc:
        return Prepared(digest, None, exc)
    except FaxDocumentError as exc:
        return Prepared(digest, None, ParseError(exc.reason_code, exc.reason))
    stored = tuple((blobs.put(a.payload, durable=False), len(a.payload)) for a in msg.attachments)
    parts = [sanitize_html(part) for part in (msg.html, *msg.more_html) if part]
    html = _HTML_PART_BREAK.join(parts) if parts else None
    light = replace(
        msg, html=None, more_html=(),
        attachments=tuple(replace(a, payload=b"") for a in msg.attachments),
    )
    return Prepared(digest, light, None, dedupe_key(msg, raw), stored, fax, html)


class Preparer:
    """Prepares a batch's inputs, streaming them in order; a worker pool when it pays.

    A pool found broken (a worker died: on a hostile document, or killed
    while idle) is renewed wherever that shows: when work is submitted, when
    a result is read, and by ``check`` between batches. A batch whose pool
    broke under it goes again, once, on the new pool; if that breaks too,
    its inputs are prepared one by one and the one that kills its worker is
    quarantined.
    """

    def __init__(self, cfg: PrepareConfig, blobs: BlobStore, workers: int) -> None:
        self.cfg = cfg
        self.blobs = blobs
        self.workers = workers
        self._pool: Executor | None = None
        self._lock = threading.Lock()
        self._probe: tuple[Executor, Future[list[Prepared]]] | None = None
        self.renewals = 0  # pools renewed after a break
        self.last_progress = monotonic()  # a result read, or a probe answered

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()

    def start(self) -> list[Future[list[Prepared]]]:
        """Start the worker processes now rather than at the first large batch.

        A worker takes about a second to start (it imports the parsers and
        the OCR stack); a long-running daemon pays that once, at start-up.
        Returns what to wait for: the caller may do other work meanwhile.
        """
        if not self.workers:
            return []
        return [self._submit([], None)[1] for _ in range(self.workers)]

    def check(self) -> bool:
        """Renew the pool if a worker died while idle; False when it had to.

        Sends the pool an empty task and looks at the previous one's answer;
        a pool still busy with a batch is not waited for.
        """
        renewals = self.renewals
        probe = self._probe
        if probe is not None:
            pool, future = probe
            if not future.done():
                return True
            self._probe = None
            try:
                future.result()
            except BrokenProcessPool:
                self._renew(pool)
                return False
            except Exception:  # a probe has nothing to fail on: the next one tells
                return True
            self.last_progress = monotonic()
        if self.workers and self._pool is not None:
            self._probe = self._submit([], None)  # renews a pool found broken at once
        return self.renewals == renewals

    def stream(self, items: Sequence[Inbound]) -> Iterator[Prepared]:
        """Each item prepared, in order, while the caller stores the earlier ones."""
        jobs: list[Job] = [(i.raw, i.kind, i.source_ref) for i in items]
        # A FAX takes about a second to read: worth a worker even alone.
        has_fax = any(kind == "fax" for _, kind, _ in jobs) or bool(self.cfg.fax.gateways)
        if self.workers < 1 or not (len(jobs) >= POOL_THRESHOLD or has_fax):
            for raw, kind, name in jobs:
                yield prepare(raw, kind, name, self.cfg)
                self.last_progress = monotonic()
            return
        size = 1 if has_fax else 8
        chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
        futures = [self._submit(chunk, self.cfg) for chunk in chunks]
        retried = False
        i = 0
        while i < len(chunks):
            pool, future = futures[i]
            try:
                prepared = future.result()
            except DESK_FAULTS:
                raise  # the desk's fault, not the document's: retried at the next poll
            except BrokenProcessPool:
                self._renew(pool)
                if not retried:
                    retried = True
                    log.warning("a worker died; the rest of the batch goes again on a new pool")
                    futures[i:] = [self._submit(chunk, self.cfg) for chunk in chunks[i:]]
                    continue
                prepared = [self._isolate(job) for job in chunks[i]]
            except Exception:  # a worker's failure is one input's fault
                prepared = [self._isolate(job) for job in chunks[i]]
            self.last_progress = monotonic()
            yield from prepared
            i += 1

    def _submit(self, jobs: list[Job], cfg: PrepareConfig | None
                ) -> tuple[Executor, Future[list[Prepared]]]:
        """Hand ``jobs`` to the pool (a new one if it is found broken); with the pool used."""
        for attempt in (1, 2):
            with self._lock:
                if self._pool is None:
                    self._pool = _new_pool(self.workers)
                pool = self._pool
            try:
                return pool, pool.submit(_prepare_chunk, jobs, cfg)
            except BrokenProcessPool:
                if attempt == 2:
                    raise
                self._renew(pool)
        raise AssertionError("unreachable")

    def _renew(self, broken: Executor) -> None:
        """Drop the broken pool (if it is still the current one); the next submit starts one."""
        with self._lock:
            if self._pool is not broken:
                return  # another thread renewed it already
            self._pool = None
            self.renewals += 1
        log.warning("the worker pool was broken (a worker died); starting a new one")
        broken.shutdown(wait=False, cancel_futures=True)

    def _isolate(self, job: Job) -> Prepared:
        """Prepare one input of a failed chunk alone, still in a worker (twice if a worker
        died meanwhile that was not its own)."""
        for attempt in (1, 2):
            pool, future = self._submit([job], self.cfg)
            try:
                return future.result()[0]
            except DESK_FAULTS:
                raise
            except Exception as exc:
                if isinstance(exc, BrokenProcessPool):
                    self._renew(pool)
                    if attempt == 1:
                        continue
                log.error("%s: preparing it failed: %r", job[2], exc)
                digest = self.blobs.put(job[0], durable=False)
                return Prepared(digest, None, ParseError(
                    "worker_failed",
                    f"reading it stopped the worker: {type(exc).__name__}: {exc}"))
        raise AssertionError("unreachable")


def _new_pool(workers: int) -> ProcessPoolExecutor:
    # forkserver: workers inherit no database connections or threads. The
    # forkserver and every worker die with the daemon (ingest.children).
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["__main__", "madoguchi.ingest._forkserver"])
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=die_with_parent)
