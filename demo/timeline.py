"""Plan the demo stream: which camera captures what, when, and with which planted events.

All randomness comes from ``numpy.random.default_rng`` seeded with ``[seed, purpose, index]`` (no global
RNG): the schedule uses ``[seed, 0]`` and frame ``n`` uses ``[seed, 1, n]``, so a frame's content does not
depend on the order in which frames are rendered.

Schedule: each image gets a day (uniform), a camera (by ``CameraSpec.share``) and a UTC hour drawn from
``HOUR_WEIGHTS`` (busier by day than by night), then a uniform second within that hour; frames are numbered
in capture order. Events: from ``start + planted_day`` days the camera ``planted_camera`` carries an
overlay in a fixed corner (``StreamConfig.overlay_box``); from ``start + global_change_day`` days every
camera sees ``LIGHTING`` (darker, warm colour cast).

Per frame (all uniform draws): one of ``config.objects`` and of ``BACKGROUNDS``; the object box
(:func:`_object_box`); a background window covering 50-100% of the background photo, mirrored or not;
a tint of the grey textures ``U(0.65, 1.05) * U(0.85, 1.1)`` per channel; camera gains
``U(0.88, 1.12)`` (times ``NIGHT_BRIGHTNESS`` at night hours) ``* U(0.96, 1.04)`` per channel; JPEG quality
82-92. The frame size is the camera's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np

from demo.compose import FrameRecipe, Gains, Overlay
from demo.sources import BACKGROUNDS, OBJECTS, CropBox, ObjectSource

#: relative capture rate per UTC hour 0..23: night (0-5, 21-23) 0.3, shoulders (6-7, 19-20) 0.7, day 1.0
HOUR_WEIGHTS: tuple[float, ...] = (0.3,) * 6 + (0.7,) * 2 + (1.0,) * 11 + (0.7,) * 2 + (0.3,) * 3
#: brightness factor at night hours (weight 0.3); 1.0 otherwise
NIGHT_BRIGHTNESS = 0.9
#: global lighting change: per-channel RGB multipliers (darker, warm cast)
LIGHTING: Gains = (0.85, 0.80, 0.70)

#: planted overlays that can be chosen with ``StreamConfig.planted_kind``. Measured with EfficientNet-Lite0
#: on the default stream (share of planted frames of site-north/cam-2 whose CAM energy outside the object
#: box exceeds 0.5; the same camera before the poster: 1-4%): cat_poster 94% at 0.5 of the frame height
#: (20% at 0.4), pagoda_poster 7% and logo 6% at 0.5, so only the cat poster pulls the attention away.
OVERLAYS: dict[str, Overlay] = {
    "cat_poster": Overlay("cat_poster", "chelsea", (60, 0, 400, 300)),
    "pagoda_poster": Overlay("pagoda_poster", "china", (60, 0, 370, 420)),
    "logo": Overlay("logo", "logo", (0, 0, 500, 500)),
}


CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")


@dataclass(frozen=True)
class CameraSpec:
    """One camera: ``site``/``camera`` (camera names are unique across sites), frame size, share of images,
    and the EXIF ``Make``/``Model`` its JPEGs carry (empty: none)."""

    site: str
    camera: str
    width: int
    height: int
    share: float = 1.0
    make: str = ""
    model: str = ""

    @property
    def camera_id(self) -> str:
        return f"{self.site}/{self.camera}"


DEFAULT_CAMERAS: tuple[CameraSpec, ...] = (
    CameraSpec("site-north", "cam-1", 640, 480, make="AXIS", model="M3106-L Mk II"),
    CameraSpec("site-north", "cam-2", 640, 480, make="AXIS", model="M3106-L Mk II"),
    CameraSpec("site-south", "cam-3", 800, 600, make="Hikvision", model="DS-2CD2143G2-I"),
    CameraSpec("site-south", "cam-4", 640, 480, make="AXIS", model="M3106-L Mk II"),
)


@dataclass(frozen=True)
class StreamConfig:
    """Parameters of a generated stream. ``planted_day``/``global_change_day`` count days after ``start``.

    ``overlay_fraction`` is the overlay's height as a fraction of the frame height; ``overlay_corner`` is one
    of :data:`CORNERS`; ``object_area`` is the range of the object box's share of the frame area.
    """

    seed: int = 0
    start: date = date(2026, 11, 1)
    days: int = 14
    images: int = 2000
    cameras: tuple[CameraSpec, ...] = DEFAULT_CAMERAS
    objects: tuple[ObjectSource, ...] = OBJECTS
    planted_camera: str = "site-north/cam-2"
    planted_day: int = 6
    planted_kind: str = "cat_poster"
    overlay_fraction: float = 0.5
    overlay_corner: str = "top-right"
    global_change_day: int = 10
    object_area: tuple[float, float] = (0.3, 0.5)

    def __post_init__(self) -> None:
        if self.days < 1 or self.images < 1:
            raise ValueError(f"days and images must be positive, got days={self.days}, images={self.images}")
        if not 0 <= self.planted_day < self.days or not 0 <= self.global_change_day < self.days:
            raise ValueError(f"planted_day={self.planted_day} and global_change_day={self.global_change_day} "
                             f"must lie within the {self.days} days")
        if self.planted_camera not in {c.camera_id for c in self.cameras}:
            raise ValueError(f"planted_camera {self.planted_camera!r} is not one of the cameras "
                             f"{[c.camera_id for c in self.cameras]}")
        if self.planted_kind not in OVERLAYS:
            raise ValueError(f"unknown planted_kind {self.planted_kind!r}; known: {sorted(OVERLAYS)}")
        if self.overlay_corner not in CORNERS:
            raise ValueError(f"unknown overlay_corner {self.overlay_corner!r}; known: {CORNERS}")
        if not 0.0 < self.overlay_fraction <= 0.8:
            raise ValueError(f"overlay_fraction={self.overlay_fraction} must lie in (0, 0.8]")
        low, high = self.object_area
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"object_area={self.object_area} must satisfy 0 < low <= high <= 1")

    @classmethod
    def small(cls, seed: int = 0) -> StreamConfig:
        """A fast stream for tests: 3 days, 240 images, overlay from day 1, lighting change from day 2."""
        return cls(seed=seed, days=3, images=240, planted_day=1, global_change_day=2)

    def day_start(self, day: int) -> datetime:
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC) + timedelta(days=day)

    @property
    def planted_start(self) -> datetime:
        return self.day_start(self.planted_day)

    @property
    def global_change_start(self) -> datetime:
        return self.day_start(self.global_change_day)

    def camera(self, camera_id: str) -> CameraSpec:
        for spec in self.cameras:
            if spec.camera_id == camera_id:
                return spec
        raise KeyError(f"unknown camera {camera_id!r}")

    def overlay_box(self) -> CropBox:
        """The planted region on ``planted_camera``, in its frame pixels: a fixed corner, 8 px margin."""
        spec = self.camera(self.planted_camera)
        x0, y0, x1, y1 = OVERLAYS[self.planted_kind].box
        height = round(self.overlay_fraction * spec.height)
        width = round(height * (x1 - x0) / (y1 - y0))
        margin = 8
        left = margin if self.overlay_corner.endswith("left") else spec.width - margin - width
        top = margin if self.overlay_corner.startswith("top") else spec.height - margin - height
        return (left, top, left + width, top + height)


@dataclass(frozen=True)
class FramePlan:
    """One planned frame: when and where it is captured, the recipe to render it and its ground truth."""

    index: int
    captured_at: datetime
    spec: CameraSpec
    recipe: FrameRecipe
    planted: bool
    global_change: bool

    @property
    def relpath(self) -> str:
        """``<site>/<camera>/<YYYY-MM-DD>/frame_<n>.jpg``, with ``/`` separators."""
        return f"{self.spec.site}/{self.spec.camera}/{self.captured_at:%Y-%m-%d}/frame_{self.index:06d}.jpg"


def _schedule(config: StreamConfig) -> list[tuple[datetime, CameraSpec]]:
    rng = np.random.default_rng([config.seed, 0])
    n = config.images
    days = rng.integers(0, config.days, size=n)
    shares = np.asarray([c.share for c in config.cameras], dtype=np.float64)
    cams = rng.choice(len(config.cameras), size=n, p=shares / shares.sum())
    hour_p = np.asarray(HOUR_WEIGHTS) / sum(HOUR_WEIGHTS)
    hours = rng.choice(24, size=n, p=hour_p)
    seconds = rng.integers(0, 3600, size=n)
    offsets = days * 86400 + hours * 3600 + seconds
    order = np.lexsort((cams, offsets))
    base = config.day_start(0)
    return [(base + timedelta(seconds=int(offsets[i])), config.cameras[int(cams[i])]) for i in order]


def _object_box(rng: np.random.Generator, config: StreamConfig, spec: CameraSpec, obj: ObjectSource,
                keep_clear: CropBox | None) -> CropBox:
    """Object box: area fraction ~ U(object_area), the crop's aspect ratio x U(0.9, 1.1), uniform position.

    With ``keep_clear`` (the planted camera's overlay corner, for its whole timeline, so that the camera's
    framing does not change when the overlay appears) positions overlapping it are redrawn, up to 50
    times, after which the box shrinks by 10% and the draws start again.
    """
    x0, y0, x1, y1 = obj.box
    aspect = (x1 - x0) / (y1 - y0) * rng.uniform(0.9, 1.1)
    area = rng.uniform(*config.object_area) * spec.width * spec.height
    height = min(int(round(np.sqrt(area / aspect))), spec.height)
    width = min(int(round(height * aspect)), spec.width)
    while True:
        for _ in range(50):
            left = int(rng.integers(0, spec.width - width + 1))
            top = int(rng.integers(0, spec.height - height + 1))
            box = (left, top, left + width, top + height)
            if keep_clear is None or not _overlaps(box, keep_clear):
                return box
        width, height = max(1, int(width * 0.9)), max(1, int(height * 0.9))


def _overlaps(a: CropBox, b: CropBox) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _background_window(rng: np.random.Generator, size: tuple[int, int], aspect: float) -> CropBox:
    """A window of the background with the canvas' aspect ratio covering 50-100% of the limiting side."""
    cols, rows = size
    width = min(cols, rows * aspect) * rng.uniform(0.5, 1.0)
    height = width / aspect
    w, h = max(int(width), 1), max(int(height), 1)
    left = int(rng.integers(0, cols - w + 1))
    top = int(rng.integers(0, rows - h + 1))
    return (left, top, left + w, top + h)


def _gains(values: np.ndarray) -> Gains:
    r, g, b = (float(v) for v in values)
    return (r, g, b)


def plan_stream(config: StreamConfig) -> list[FramePlan]:
    """Plan every frame of the stream, in capture order."""
    overlay = OVERLAYS[config.planted_kind]
    overlay_box = config.overlay_box()
    plans = []
    for index, (when, spec) in enumerate(_schedule(config)):
        rng = np.random.default_rng([config.seed, 1, index])
        obj = config.objects[int(rng.integers(len(config.objects)))]
        background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
        bx0, by0, bx1, by1 = background.box
        planted = spec.camera_id == config.planted_camera and when >= config.planted_start
        global_change = when >= config.global_change_start
        brightness = rng.uniform(0.88, 1.12) * (NIGHT_BRIGHTNESS if HOUR_WEIGHTS[when.hour] < 0.5 else 1.0)
        balance = rng.uniform(0.96, 1.04, size=3)
        keep_clear = overlay_box if spec.camera_id == config.planted_camera else None
        object_box = _object_box(rng, config, spec, obj, keep_clear)
        recipe = FrameRecipe(
            width=spec.width,
            height=spec.height,
            background=background,
            background_window=_background_window(rng, (bx1 - bx0, by1 - by0), spec.width / spec.height),
            background_flip=bool(rng.integers(2)),
            tint=_gains(rng.uniform(0.65, 1.05) * rng.uniform(0.85, 1.1, size=3)),
            obj=obj,
            object_box=object_box,
            object_flip=bool(rng.integers(2)),
            feather=max(2, round(0.06 * min(object_box[2] - object_box[0], object_box[3] - object_box[1]))),
            overlay=overlay if planted else None,
            overlay_box=overlay_box if planted else None,
            lighting=LIGHTING if global_change else None,
            gains=_gains(brightness * balance),
            quality=int(rng.integers(82, 93)),
            camera=(spec.make, spec.model),
        )
        plans.append(FramePlan(index, when, spec, recipe, planted, global_change))
    return plans
