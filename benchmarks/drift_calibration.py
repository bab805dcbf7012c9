"""False alarms and detection of drift decisions, before (each test's own threshold, Jensen-Shannon class
mix: main's logic before calibrated decisions) and after (calibrated: BH per window + effect size).

    python benchmarks/drift_calibration.py [--images 8000] [--days 20] [--seeds 1 2 3] [--work /tmp/camwatch-drift-cal]

Streams (:mod:`demo.synthetic.drift_streams`): ``--images`` over ``--days`` days on four cameras, day
windows, default settings; *no-change* streams (one per seed) and *planted* streams (``cam-03`` attends a
watermark from 60 % of the period). Prints, per stream, the share of (window, slice) pairs with any alarm,
before and after, the KS tests' alarm rate, and on planted streams the first alarm of ``camera=cam-03``
(``energy_outside`` and any statistic), the detection delay in full windows, and the alarms of unaffected
slices and of every slice before the change. Databases are cached under ``--work``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from demo.synthetic import drift_streams as ds  # noqa: E402
from demo.synthetic.fill import GENERATOR_VERSION  # noqa: E402


def _stream(work: Path, planted: bool, images: int, days: int, seed: int) -> ds.Stream:
    path = work / f"{'planted' if planted else 'nochange'}-{images}-{days}-{seed}-v{GENERATOR_VERSION}.db"
    url = f"sqlite:///{path}"
    if path.exists():
        change = ds.START + ds.dt.timedelta(days=0.6 * days) if planted else None
        return ds.Stream(url, planted, days, change)
    return ds.build_stream(url, planted=planted, images=images, days=days, seed=seed)


def _share(label: str, share: ds.AlarmShare) -> str:
    return f"{label} {share.alarmed}/{share.pairs} ({100 * share.share:.1f} %)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8000)
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--work", type=Path, default=Path("/tmp/camwatch-drift-cal"))
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    totals = {"before": [0, 0], "after": [0, 0]}
    print(f"{args.images} images over {args.days} days, 4 cameras, day windows, default settings")
    for seed in args.seeds:
        before, after = ds.before_and_after(_stream(args.work, False, args.images, args.days, seed))
        b, a = ds.alarm_share(before), ds.alarm_share(after)
        for key, s in (("before", b), ("after", a)):
            totals[key][0] += s.alarmed
            totals[key][1] += s.pairs
        print(f"no-change seed {seed}: " + "; ".join([
            _share("before", b), _share("before without class mix",
                                        ds.alarm_share(before, exclude_statistics=("predicted_class",))),
            f"KS tests before {100 * ds.share_of_test(before, 'ks').share:.1f} %", _share("after", a)]))
    for key, (alarmed, pairs) in totals.items():
        print(f"no-change, all seeds, {key}: {alarmed}/{pairs} pairs alarmed ({100 * alarmed / max(pairs, 1):.2f} %)")
    for seed in args.seeds[:2]:
        stream = _stream(args.work, True, args.images, args.days, seed)
        assert stream.change is not None
        for label, frame in zip(("before", "after"), ds.before_and_after(stream), strict=True):
            energy = ds.first_alarm(frame, ds.PLANTED_SLICE, "energy_outside")
            print(f"planted seed {seed} {label}: change {stream.change:%Y-%m-%d %H:%M}; {ds.PLANTED_SLICE} "
                  f"energy_outside first alarm {energy:%Y-%m-%d} " if energy else "never; ", end="")
            print(f"delay {ds.detection_delay(frame, stream.change)} full windows (any statistic "
                  f"{ds.detection_delay(frame, stream.change, statistic=None)}); "
                  + _share("unaffected slices, whole stream", ds.alarm_share(frame, slices=ds.UNAFFECTED_SLICES))
                  + "; " + _share("all slices before the change", ds.alarm_share(frame, before=stream.change)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
