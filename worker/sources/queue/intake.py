"""From an event's ``image`` to a file the pipeline can decode, with its sha256.

- inline ``data``: decoded (refused above ``max_inline_bytes`` before decoding) and written to the spool,
  ``<spool>/<sha[:2]>/<sha256><suffix>`` (content-addressed: the same bytes land in the same file; written
  to a temporary name and renamed, so a reader never sees half a file);
- ``file://``: read where it is, only below ``allowed_roots``. The check is lexical first (a path outside
  every root is refused without touching the file system, so a refusal says nothing about what exists
  there), then on the resolved path (a symlink inside a root that leads out is refused too);
- ``http(s)://``: only from ``allowed_hosts`` (``host`` or ``host:port``), without proxies, redirects only
  to allowed hosts, at most ``max_download_bytes``; given up when the whole download took longer than
  ``download_timeout_seconds`` (each network wait is bounded by it too, so a server that stalls is left
  after at most twice that); spooled.

Every refusal is an :class:`~camwatch.events.EventError` whose reason names the problem; URLs in
reasons lose their query string and user info (signed URLs carry secrets there).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import stat
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from camwatch.events import CONTENT_TYPE_SUFFIXES, EventError, ImageEvent, decode_inline

_CHUNK = 1 << 16
_MAX_REDIRECTS = 3


@dataclass(frozen=True)
class IntakeConfig:
    spool: Path
    allowed_roots: tuple[Path, ...] = ()
    allowed_hosts: frozenset[str] = frozenset()
    max_inline_bytes: int = 1 << 20
    max_download_bytes: int = 20 << 20
    download_timeout: float = 10.0

    @classmethod
    def create(cls, spool: Path, allowed_roots: Iterable[Path], allowed_hosts: Iterable[str], *,
               max_inline_bytes: int, max_download_bytes: int, download_timeout: float) -> IntakeConfig:
        """Resolved roots, lower-case hosts, and the spool folder created."""
        spool = Path(spool).expanduser().resolve()
        spool.mkdir(parents=True, exist_ok=True)
        roots = tuple(Path(os.path.abspath(Path(r).expanduser())) for r in allowed_roots)
        return cls(spool, tuple(dict.fromkeys((*roots, *(r.resolve() for r in roots)))),
                   frozenset(h.strip().lower() for h in allowed_hosts if h.strip()), max_inline_bytes,
                   max_download_bytes, download_timeout)


@dataclass(frozen=True)
class ImageFile:
    """The event's image on disk: ``path`` to decode, its digest and size, and whether it is in the spool."""

    path: Path
    sha256: str
    size_bytes: int
    mtime_ns: int
    spooled: bool


def shown(url: str) -> str:
    """``url`` without user info, query and fragment: safe for logs and stored reasons."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=host, query="", fragment="").geturl()


def materialize(event: ImageEvent, cfg: IntakeConfig) -> ImageFile:
    """The image file of ``event`` (module docstring), or :class:`EventError`."""
    if event.data is not None:
        data = decode_inline(event.data, cfg.max_inline_bytes, event.id)
        return spool_bytes(data, cfg.spool, CONTENT_TYPE_SUFFIXES.get(event.content_type or "", ".img"))
    assert event.uri is not None  # the schema requires exactly one of data and uri
    scheme = urlsplit(event.uri).scheme.lower()
    if scheme == "file":
        return _local_file(event, cfg)
    if scheme in ("http", "https"):
        data = _download(event, cfg)
        suffix = Path(urlsplit(event.uri).path).suffix.lower()
        return spool_bytes(data, cfg.spool, suffix if suffix in CONTENT_TYPE_SUFFIXES.values() else ".img")
    raise EventError(f"image/uri: unsupported scheme {scheme!r} (file, http, https)", event.id)


def spool_bytes(data: bytes, spool: Path, suffix: str) -> ImageFile:
    """Write ``data`` to its content-addressed spool file (kept when already there); returns the file.

    A spooled file's ``mtime_ns`` is 0: it says nothing about the image (its capture time comes from the event).
    """
    digest = hashlib.sha256(data).hexdigest()
    folder = spool / digest[:2]
    path = folder / f"{digest}{suffix}"
    if not path.exists():
        part = folder / f".{digest}.{os.getpid()}.{threading.get_ident()}.part"
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except FileNotFoundError:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(part, path)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    return ImageFile(path, digest, len(data), 0, spooled=True)


def _inside(path: Path, roots: Iterable[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def _local_file(event: ImageEvent, cfg: IntakeConfig) -> ImageFile:
    assert event.uri is not None
    parts = urlsplit(event.uri)
    if parts.netloc not in ("", "localhost"):
        raise EventError(f"image/uri: file URI names host {parts.netloc!r}; only local files (file:///path)",
                         event.id)
    raw = unquote(parts.path)
    if not raw.startswith("/"):
        raise EventError("image/uri: file URI needs an absolute path (file:///path)", event.id)
    lexical = Path(os.path.normpath(raw))
    if not cfg.allowed_roots or not _inside(lexical, cfg.allowed_roots):
        raise EventError(f"image/uri: {lexical} is outside the allowed roots (allowed_roots, --allow-root: "
                         f"{', '.join(map(str, cfg.allowed_roots)) or 'none configured'})", event.id)
    try:
        resolved = lexical.resolve(strict=True)
    except FileNotFoundError:
        raise EventError(f"image/uri: {lexical}: file not found", event.id) from None
    except (OSError, RuntimeError) as exc:
        raise EventError(f"image/uri: {lexical}: cannot resolve ({exc})", event.id) from None
    if not _inside(resolved, cfg.allowed_roots):
        raise EventError(f"image/uri: {lexical} resolves to {resolved}, outside the allowed roots", event.id)
    digest = hashlib.sha256()
    try:  # O_NONBLOCK: a FIFO planted under a root must not hang the worker; fstat then refuses it
        fd = os.open(resolved, os.O_RDONLY | os.O_NONBLOCK)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise EventError(f"image/uri: {lexical} is not a regular file", event.id)
        with os.fdopen(fd, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    except OSError as exc:
        raise EventError(f"image/uri: {lexical}: cannot read ({exc.strerror or exc})", event.id) from None
    return ImageFile(lexical, digest.hexdigest(), st.st_size, st.st_mtime_ns, spooled=False)


def _host_allowed(url: str, hosts: frozenset[str]) -> bool:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return False
    host = parts.hostname.lower()
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    return host in hosts or f"{host}:{port}" in hosts


class _AllowedRedirects(urllib.request.HTTPRedirectHandler):
    max_redirections = _MAX_REDIRECTS

    def __init__(self, hosts: frozenset[str]) -> None:
        self.hosts = hosts

    def redirect_request(self, req: urllib.request.Request, fp: object, code: int, msg: str, headers: object,
                         newurl: str) -> urllib.request.Request | None:
        if not _host_allowed(newurl, self.hosts):
            raise urllib.error.URLError(f"redirected to {shown(newurl)}, not an allowed host")
        return super().redirect_request(req, fp, code, msg, headers, newurl)  # type: ignore[arg-type]


def _download(event: ImageEvent, cfg: IntakeConfig) -> bytes:
    assert event.uri is not None
    url, limit, budget = event.uri, cfg.max_download_bytes, cfg.download_timeout
    if not _host_allowed(url, cfg.allowed_hosts):
        raise EventError(f"image/uri: {shown(url)}: host not in allowed_hosts "
                         f"({', '.join(sorted(cfg.allowed_hosts)) or 'none configured'})", event.id)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _AllowedRedirects(cfg.allowed_hosts))
    deadline = time.monotonic() + budget
    try:
        with opener.open(urllib.request.Request(url, headers={"User-Agent": "camwatch"}), timeout=budget) as resp:
            declared = resp.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise EventError(f"image/uri: {shown(url)}: {declared} bytes, above the limit of {limit} "
                                 "(queue.max_download_bytes)", event.id)
            chunks, size = [], 0
            while True:
                block = resp.read1(_CHUNK)  # what has arrived; each wait bounded by the socket timeout
                if time.monotonic() > deadline:
                    raise TimeoutError
                if not block:
                    break
                size += len(block)
                if size > limit:
                    raise EventError(f"image/uri: {shown(url)}: more than {limit} bytes "
                                     "(queue.max_download_bytes)", event.id)
                chunks.append(block)
    except EventError:
        raise
    except urllib.error.HTTPError as exc:
        raise EventError(f"image/uri: {shown(url)}: HTTP {exc.code} {exc.reason}", event.id) from None
    except urllib.error.URLError as exc:
        raise EventError(f"image/uri: {shown(url)}: cannot fetch ({exc.reason})", event.id) from None
    except (TimeoutError, OSError, http.client.HTTPException) as exc:
        if isinstance(exc, TimeoutError) or time.monotonic() >= deadline:
            raise EventError(f"image/uri: {shown(url)}: not received within {budget:g} s "
                             "(queue.download_timeout_seconds)", event.id) from None
        raise EventError(f"image/uri: {shown(url)}: download failed ({type(exc).__name__}: {exc})",
                         event.id) from None
    return b"".join(chunks)
