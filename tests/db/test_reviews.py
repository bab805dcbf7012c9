"""The review queue and its claims, verdicts, the evidence behind precision, accepted thresholds with their
audit trail, accuracy by reviewed labels, and the curated set -- on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from camwatch.monitoring.flags import FlagConfig
from camwatch.monitoring.review import apply_overrides
from db.audit import audit_events
from db.curated import curated_images
from db.models import Review
from db.models_qa import ReviewClaim
from db.queries import ImageFilter, label_accuracy
from db.reviews import (
    QueueFilter,
    accept_threshold,
    active_claims,
    claim_next,
    flagged_per_rule,
    record_verdict,
    release_claims,
    revert_threshold,
    reviewed_flags,
    threshold_overrides,
)
from tests.support.databases import migrated_engine
from tests.support.qa import seed_images

# image id i = k + 1 (capture order): class k % 3, camera cam-1 for odd ids, cam-2 for even ones; ids 1..20
# flagged by energy_outside with value 0.50 + 0.01 i (threshold 0.5: id 20 is the most severe), 21..24 not
VALUES = [0.51 + 0.01 * k for k in range(20)] + [None] * 4
TTL = 60.0


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with migrated_engine(request.param, tmp_path) as engine:
        seed_images(engine, len(VALUES), flag_values=VALUES)
        yield engine


def _claim(engine: Engine, holder: str, **kwargs: object) -> int | None:
    return claim_next(engine, holder=holder, reviewer=f"reviewer {holder}", queue=kwargs.pop("queue", QueueFilter()),
                      ttl_seconds=kwargs.pop("ttl", TTL), **kwargs).image_id  # type: ignore[arg-type]


def test_the_queue_serves_the_most_severe_unreviewed_image_first(engine: Engine) -> None:
    first = claim_next(engine, holder="a", reviewer="ana", queue=QueueFilter(), ttl_seconds=TTL)
    assert first.image_id == 20 and first.waiting == 20  # value 0.70: the largest margin over 0.5
    # id 20 is also the newest flagged capture, but "a" holds it
    assert _claim(engine, "b", queue=QueueFilter(order="newest")) == 19
    # camera cam-1 has the odd ids; 19 is held by "b"
    assert _claim(engine, "c", queue=QueueFilter(images=ImageFilter(tag_key="camera", tag_value="cam-1"))) == 17
    assert _claim(engine, "d", queue=QueueFilter(rule="border_energy")) is None


def test_two_reviewers_never_hold_the_same_image(engine: Engine) -> None:
    a, b = _claim(engine, "a"), _claim(engine, "b")
    assert a is not None and b is not None and a != b
    assert _claim(engine, "a", current=a) == a  # renewing keeps the same image
    held = {r.image_id: r.reviewer for r in active_claims(engine).itertuples()}
    assert held == {a: "reviewer a", b: "reviewer b"}


def test_concurrent_claims_hand_out_distinct_images(engine: Engine) -> None:
    holders = [f"h{i}" for i in range(8)]
    barrier = threading.Barrier(len(holders))
    got: dict[str, int | None] = {}
    errors: list[BaseException] = []

    def take(holder: str) -> None:
        try:
            barrier.wait()
            got[holder] = _claim(engine, holder)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=take, args=(h,)) for h in holders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert None not in got.values() and len(set(got.values())) == len(holders)


def test_a_verdict_ends_the_hold_and_the_next_image_comes(engine: Engine) -> None:
    first = _claim(engine, "a")
    assert first is not None
    record_verdict(engine, actor="tester", client=None, image_id=first, verdict="false_alarm", reviewer="ana", note="poster", holder="a")
    second = _claim(engine, "a", current=first)
    assert second not in (None, first)
    with engine.connect() as conn:
        holds = conn.execute(select(ReviewClaim.image_id).where(ReviewClaim.holder == "a")).scalars().all()
    assert holds == [second]


def test_an_expired_hold_can_be_taken_over_and_skips_are_honoured(engine: Engine) -> None:
    first = _claim(engine, "a", ttl=0.05)
    time.sleep(0.2)
    assert _claim(engine, "b") == first  # a's hold lapsed
    assert _claim(engine, "a", current=first) != first  # and a cannot renew it any more
    skipped = _claim(engine, "c", skip=[first, 19, 18])
    assert skipped not in (first, 19, 18)
    assert release_claims(engine, "c") == 1


def test_reviewed_flags_carry_the_latest_verdict_and_the_slice(engine: Engine) -> None:
    record_verdict(engine, actor="tester", client=None, image_id=3, verdict="false_alarm", reviewer="ana")
    record_verdict(engine, actor="tester", client=None, image_id=3, verdict="wrong_attention_confirmed", reviewer="ben")  # latest wins
    record_verdict(engine, actor="tester", client=None, image_id=4, verdict="unsure", reviewer="ana")
    frame = reviewed_flags(engine, tag_key="camera")
    assert frame[["image_id", "rule", "verdict", "slice"]].values.tolist() == [
        [3, "energy_outside", "wrong_attention_confirmed", "cam-1"], [4, "energy_outside", "unsure", "cam-2"]]
    assert frame["value"].tolist() == pytest.approx([0.53, 0.54])
    assert flagged_per_rule(engine) == {"energy_outside": 20}
    assert reviewed_flags(engine, ImageFilter(tag_key="camera", tag_value="cam-2"))["image_id"].tolist() == [4]


def test_a_wrong_label_verdict_overrides_the_label_for_accuracy(engine: Engine) -> None:
    assert label_accuracy(engine) == (24, 24)  # every seeded prediction matches its label
    record_verdict(engine, actor="tester", client=None, image_id=1, verdict="wrong_label", reviewer="ana", label="dog", label_index=1)
    assert label_accuracy(engine) == (24, 23)  # image 1 predicts class 0 (cat): now wrong
    record_verdict(engine, actor="tester", client=None, image_id=1, verdict="wrong_attention_confirmed", reviewer="ben")  # not about labels
    assert label_accuracy(engine) == (24, 23)
    record_verdict(engine, actor="tester", client=None, image_id=1, verdict="wrong_label", reviewer="chloe", label="cat", label_index=0)
    assert label_accuracy(engine) == (24, 24)  # the latest correction wins
    record_verdict(engine, actor="tester", client=None, image_id=2, verdict="wrong_label", reviewer="ana", label="a fox")  # no model class
    assert label_accuracy(engine) == (24, 23)
    with pytest.raises(ValueError, match="needs the right label"):
        record_verdict(engine, actor="tester", client=None, image_id=2, verdict="wrong_label", reviewer="ana")
    with pytest.raises(ValueError, match="only a 'wrong_label' verdict carries a label"):
        record_verdict(engine, actor="tester", client=None, image_id=2, verdict="false_alarm", reviewer="ana", label="dog")


def test_accepted_thresholds_are_audited_and_applied(engine: Engine) -> None:
    accept_threshold(engine, rule="energy_outside", value=0.62, previous=0.5, actor="admin",
                     evidence={"precision": 0.93, "reviewed": 14})
    overrides = threshold_overrides(engine)
    assert overrides["energy_outside"].value == 0.62 and overrides["energy_outside"].setting == "energy_outside_max"
    config = apply_overrides(FlagConfig(), {o.setting: o.value for o in overrides.values()})
    assert config.energy_outside_max == 0.62 and config.border_energy_max == FlagConfig().border_energy_max
    assert revert_threshold(engine, rule="energy_outside", actor="admin", restored=0.5)
    assert threshold_overrides(engine) == {} and not revert_threshold(engine, rule="energy_outside", actor="x",
                                                                       restored=None)
    events = audit_events(engine)
    assert events["action"].tolist() == ["threshold.revert", "threshold.accept"]
    assert events["subject"].tolist() == ["flags.energy_outside_max"] * 2
    assert events["detail"].iloc[1] == {"rule": "energy_outside", "from": 0.5, "to": 0.62, "note": None,
                                         "precision": 0.93, "reviewed": 14}
    with pytest.raises(ValueError, match="no tunable threshold"):
        accept_threshold(engine, rule="pointing_miss", value=0.4, previous=0.5, actor="admin", evidence={})
    with pytest.raises(ValueError, match="unknown flag settings"):
        apply_overrides(FlagConfig(), {"nope": 1.0})


def test_the_curated_set_holds_the_confirmed_images_with_their_boxes(engine: Engine) -> None:
    for image_id, verdict in ((5, "wrong_attention_confirmed"), (6, "false_alarm"), (7, "wrong_attention_confirmed")):
        record_verdict(engine, actor="tester", client=None, image_id=image_id, verdict=verdict, reviewer="ana", note=f"n{image_id}")
    record_verdict(engine, actor="tester", client=None, image_id=7, verdict="wrong_label", reviewer="ben", label="bird", label_index=2)
    record_verdict(engine, actor="tester", client=None, image_id=7, verdict="wrong_attention_confirmed", reviewer="ben")
    rows = {r["image_id"]: r for r in curated_images(engine)}
    assert set(rows) == {5, 7}
    five = rows[5]
    assert five["object_boxes"] == [[100.0, 50.0, 300.0, 250.0]] and five["cam_box"] == [320.0, 0.0, 640.0, 240.0]
    assert (five["label"], five["label_index"], five["label_source"]) == ("dog", 1, "annotation")
    assert rows[7]["label"] == "bird" and rows[7]["label_source"] == "review"
    assert five["flags"] == "energy_outside=0.55 (threshold 0.5)" and five["note"] == "n5"
    with engine.connect() as conn:
        assert conn.execute(select(Review.id).where(Review.image_id == 6)).first() is not None
    assert isinstance(five["captured_at"], dt.datetime) and five["file_name"] == "img_00005.jpg"
