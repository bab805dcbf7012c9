"""Grow a synthetic database by one processed batch, as a worker would commit it (benchmarks of drift
maintenance as the history grows, :file:`benchmarks/drift_incremental.py`).

:func:`append_batch` copies ``n`` already processed images of the database (the first ``n`` by id, repeated when fewer: image,
prediction, primary heatmap, tags) as new images with fresh ids, content hashes and uris, capture times
spread evenly over ``[captured_from, captured_from + span)`` and ``processed_at`` as given.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from sqlalchemy import func, insert, select

from db.models import Heatmap, Image, ImageTag, Prediction
from db.session import make_engine, write_transaction


def _copy(row: Any, drop: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in row._mapping.items() if k not in drop}


def append_batch(url: str, n: int, *, captured_from: dt.datetime, span: dt.timedelta,
                 processed_at: dt.datetime) -> list[int]:
    """Append ``n`` processed images (module docstring); returns their ids."""
    engine = make_engine(url)
    try:
        with write_transaction(engine) as conn:
            first = int(conn.execute(select(func.max(Image.id))).scalar_one() or 0) + 1
            sources = conn.execute(select(Image).where(Image.status == "ok").order_by(Image.id).limit(n)).all()
            if not sources:
                raise ValueError("append_batch: the database holds no processed image to copy")
            # the k-th new image copies source k mod len(sources) (sources repeat when there are fewer than n)
            copies = [(first + k, sources[k % len(sources)]) for k in range(n)]
            images = []
            for k, (image_id, row) in enumerate(copies):
                values = _copy(row, ("id",))
                values.update(id=image_id, sha256=hashlib.sha256(f"grow:{image_id}".encode()).hexdigest(),
                              uri=f"/grow/{image_id}.jpg", captured_at=captured_from + span * (k / n),
                              first_seen_at=processed_at, processed_at=processed_at)
                images.append(values)
            conn.execute(insert(Image), images)
            old_ids = [r.id for r in sources]
            for table in (Prediction, ImageTag, Heatmap):
                query = select(table).where(table.image_id.in_(old_ids))
                if table is Heatmap:
                    query = query.where(Heatmap.is_primary)
                by_image: dict[int, list[Any]] = {}
                for r in conn.execute(query):
                    by_image.setdefault(r.image_id, []).append(r)
                conn.execute(insert(table), [{**_copy(r, ("id",)), "image_id": image_id}
                                             for image_id, row in copies for r in by_image.get(row.id, [])])
        return [image_id for image_id, _ in copies]
    finally:
        engine.dispose()
