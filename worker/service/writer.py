"""The write stage: a batch's results committed in one transaction, with fault isolation per image.

Database faults are retried (:func:`db.faults.retry`); a persistent one raises
:class:`~db.faults.DatabaseUnavailable` and stops the worker. Any other failure (one result the database
refuses, a value that cannot be encoded) must not cost the other images their results: the batch is then
written image by image, and an image whose result still cannot be written gets an ``error`` result naming
the reason instead (written in its place).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import Engine

from db import complete_batch
from db.faults import DatabaseUnavailable, describe, retry
from db.records import ClaimedImage, ImageResult
from worker.service.pipeline import explain_failure

log = logging.getLogger(__name__)


def write_results(engine: Engine, claimant: str, results: Sequence[ImageResult], claims: Sequence[ClaimedImage],
                  *, retry_seconds: float) -> int:
    """Commit ``results`` of ``claimant``'s claims; returns the number of images written."""
    try:
        return retry(lambda: complete_batch(engine, claimant, results), what="writing a batch's results",
                     budget_seconds=retry_seconds)
    except DatabaseUnavailable:
        raise
    except Exception:
        log.exception("writing a batch of %d results failed; writing them one by one", len(results))
    uris = {c.id: c.uri for c in claims}
    written = 0
    for result in results:
        try:
            written += retry(lambda r=result: complete_batch(engine, claimant, [r]),  # type: ignore[misc]
                             what="writing one result", budget_seconds=retry_seconds)
            continue
        except DatabaseUnavailable:
            raise
        except Exception as exc:
            reason = f"{uris.get(result.image_id, result.image_id)}: write failed ({explain_failure(exc)})"
            log.warning("image %d: %s", result.image_id, reason, extra={"uri": uris.get(result.image_id)})
        error = ImageResult(image_id=result.image_id, status="error", error=reason)
        try:
            written += retry(lambda e=error: complete_batch(engine, claimant, [e]),  # type: ignore[misc]
                             what="writing an error result", budget_seconds=retry_seconds)
        except DatabaseUnavailable:
            raise
        except Exception as exc:
            raise DatabaseUnavailable(f"the database refuses even an error row ({describe(exc)})") from exc
    return written
