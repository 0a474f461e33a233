"""The scene of a synthetic photo: a procedural car, a pinhole camera, what each part shows, the rendering.

The score definition, the car and camera models and the rendering are described in the package's
docstring (``perspective.synth``).
"""


from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..config import SCORE_PREFIX, SynthConfig

PARTS = (
    "hood", "backdoor_left", "front_bumper", "rear", "roof", "frontdoor_left", "frontdoor_right", "backdoor_right",
)
SCORE_COLUMNS = [SCORE_PREFIX + part for part in PARTS]
VIEWS = ["front", "front_left", "left", "back_left", "back", "back_right", "right", "front_right"]
LABEL_COLUMNS = ["filename", *SCORE_COLUMNS, "azimuth", "elevation", "view"]

DEFAULT_SIZE = SynthConfig.size
SUPERSAMPLE = 2  # polygons (colour and labels) are drawn at this multiple of the output size

ELEVATION_RANGE = (0.0, 45.0)
FOV_RANGE = (30.0, 65.0)  # horizontal field of view, degrees
FILL_RANGE = (0.30, 0.95)  # share of the frame spanned by the car's bounding box
MAX_ROLL = 5.0
JPEG_QUALITY = (70, 95)
MAX_BLUR = 0.8

_PART_ID = {part: i + 1 for i, part in enumerate(PARTS)}  # label-buffer values; 0 is "not the car"
_OTHER_ID = len(PARTS) + 1  # every car face that is not a scored part


def view_of(azimuth: float) -> str:
    """The view name for a camera azimuth: eight 45-degree bins centred on 0, 45, 90, ... degrees."""
    return VIEWS[int(((azimuth % 360.0) + 22.5) // 45.0) % len(VIEWS)]


# ----------------------------------------------------------------------------------------------
# The car
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Car:
    """Proportions of one procedural car (metres, degrees and fractions); the geometry follows from them.

    Fractions: ``trunk_fraction`` and ``hood_fraction`` are shares of the length behind and in front
    of the cabin; ``windscreen_fraction`` and ``rear_window_fraction`` are the horizontal runs of the
    sloped windscreen and rear window as shares of the cabin length (the rake); ``roof_width_fraction``
    is the roof width over the body width (the cabin sides lean in); the overhangs are shares of the
    length ahead of the front axle and behind the rear axle; ``bumper_fraction`` is the bumper
    strips' share of the front and back faces' height.
    """

    length: float = 4.4
    width: float = 1.8
    clearance: float = 0.17  # ground to the bottom of the body
    body_height: float = 0.75  # bottom of the body to the beltline (top of the lower body)
    cabin_height: float = 0.55
    trunk_fraction: float = 0.2
    hood_fraction: float = 0.3
    windscreen_fraction: float = 0.32
    rear_window_fraction: float = 0.22
    roof_width_fraction: float = 0.84
    hood_slope: float = 7.0  # degrees, the hood falls towards the front
    wheel_radius: float = 0.32
    front_overhang: float = 0.2
    rear_overhang: float = 0.2
    tyre_width: float = 0.22
    bumper_fraction: float = 0.32

    def __post_init__(self):
        problems = []
        if min(self.length, self.width, self.clearance, self.body_height, self.cabin_height,
               self.wheel_radius, self.tyre_width) <= 0:
            problems.append("sizes must be positive")
        if not 0.2 <= 1 - self.trunk_fraction - self.hood_fraction <= 1 or min(self.trunk_fraction, self.hood_fraction) < 0:
            problems.append("the cabin must take 20-100% of the length")
        if self.roof_front - self.roof_rear < 0.1:
            problems.append("the windscreen and rear window leave no roof")
        if self.hood_front_height < 2 * self.wheel_radius + 0.03:
            problems.append("the wheels reach above the front of the hood")
        if min(self.front_overhang, self.rear_overhang) * self.length < self.wheel_radius * 1.1 + 0.02:
            problems.append("the wheels stick out of the body's ends")
        if self.door_front - self.door_rear < 0.5:
            problems.append("no room for the doors between the wheel arches under the cabin")
        if not 0.05 <= self.bumper_fraction <= 0.6 or not 0.3 <= self.roof_width_fraction <= 1:
            problems.append("bumper_fraction must be in [0.05, 0.6] and roof_width_fraction in [0.3, 1]")
        if problems:
            raise ValueError(f"inconsistent car proportions: {'; '.join(problems)}")

    @property
    def beltline(self) -> float:
        """Height of the top of the lower body, where the cabin sits."""
        return self.clearance + self.body_height

    @property
    def height(self) -> float:
        return self.beltline + self.cabin_height

    @property
    def centre(self) -> np.ndarray:
        """The point cameras are placed around: on the z axis at mid height."""
        return np.array([0.0, 0.0, self.height / 2])

    @property
    def cabin_rear(self) -> float:
        return -self.length / 2 + self.trunk_fraction * self.length

    @property
    def cabin_front(self) -> float:
        return self.length / 2 - self.hood_fraction * self.length

    @property
    def roof_rear(self) -> float:
        return self.cabin_rear + self.rear_window_fraction * (self.cabin_front - self.cabin_rear)

    @property
    def roof_front(self) -> float:
        return self.cabin_front - self.windscreen_fraction * (self.cabin_front - self.cabin_rear)

    @property
    def hood_front_height(self) -> float:
        return self.beltline - (self.length / 2 - self.cabin_front) * math.tan(math.radians(self.hood_slope))

    @property
    def front_axle(self) -> float:
        return self.length / 2 - self.front_overhang * self.length

    @property
    def rear_axle(self) -> float:
        return -self.length / 2 + self.rear_overhang * self.length

    @property
    def door_rear(self) -> float:
        """Rear edge of the back doors: the cabin's rear or the rear wheel arch, whichever is further forward."""
        return max(self.cabin_rear, self.rear_axle + self.wheel_radius * 1.1 + 0.06)

    @property
    def door_front(self) -> float:
        """Front edge of the front doors: the windscreen base or the front wheel arch, whichever is further back."""
        return min(self.cabin_front, self.front_axle - self.wheel_radius * 1.1 - 0.06)

    @property
    def door_split(self) -> float:
        """The B pillar: front doors are a little longer than back doors."""
        return self.door_rear + 0.47 * (self.door_front - self.door_rear)

    def side_top(self, x: float) -> float:
        """Height of the lower body's top edge at ``x``: flat to the windscreen base, then the hood slope."""
        if x <= self.cabin_front:
            return self.beltline
        t = (x - self.cabin_front) / (self.length / 2 - self.cabin_front)
        return self.beltline + t * (self.hood_front_height - self.beltline)


def default_car() -> Car:
    """A mid-sized saloon: 4.4 m long, 1.8 m wide, 1.47 m high."""
    return Car()


def random_car(rng: np.random.Generator) -> Car:
    """Random proportions from compact hatchback to large saloon, always a consistent ``Car``."""
    for _ in range(100):
        length = rng.uniform(3.6, 5.0)
        radius = rng.uniform(0.28, 0.37)
        clearance = rng.uniform(0.12, min(0.24, radius - 0.08))
        body_height = max(rng.uniform(0.5, 0.8), 2 * radius + 0.12 - clearance)
        hood_fraction = rng.uniform(0.2, 0.34)
        hood_length = hood_fraction * length
        beltline = clearance + body_height
        steepest = math.degrees(math.atan((beltline - 2 * radius - 0.05) / hood_length))
        min_overhang = (radius * 1.1 + 0.05) / length
        try:
            return Car(
                length=length,
                width=rng.uniform(1.6, 2.0),
                clearance=clearance,
                body_height=body_height,
                cabin_height=rng.uniform(0.4, 0.7),
                trunk_fraction=rng.uniform(0.0, 0.26),
                hood_fraction=hood_fraction,
                windscreen_fraction=rng.uniform(0.22, 0.4),
                rear_window_fraction=rng.uniform(0.08, 0.35),
                roof_width_fraction=rng.uniform(0.78, 0.92),
                hood_slope=min(rng.uniform(3.0, 14.0), steepest),
                wheel_radius=radius,
                front_overhang=max(rng.uniform(0.16, 0.23), min_overhang),
                rear_overhang=max(rng.uniform(0.15, 0.24), min_overhang),
                tyre_width=rng.uniform(0.18, 0.27),
                bumper_fraction=rng.uniform(0.25, 0.4),
            )
        except ValueError:
            continue  # a rare inconsistent draw (e.g. no room for doors): draw again, still deterministic
    raise RuntimeError("random_car: no consistent car in 100 draws")  # pragma: no cover


@dataclass(eq=False)
class Face:
    """A convex planar polygon of the car with its outward unit normal, material and part (or None)."""

    vertices: np.ndarray  # (k, 3)
    material: str
    part: str | None = None
    normal: np.ndarray = field(init=False)
    area: float = field(init=False)
    centre: np.ndarray = field(init=False)

    def orient(self, inside: np.ndarray) -> Face:
        """Compute normal, area and centre, the normal pointing away from ``inside`` (a point of the solid)."""
        v = self.vertices
        x, y, z = v.T
        x2, y2, z2 = np.concatenate((v[1:], v[:1])).T
        # Newell's method: half the sum of the edges' cross products is the area vector
        area_vector = 0.5 * np.array([np.dot(y, z2) - np.dot(z, y2), np.dot(z, x2) - np.dot(x, z2),
                                      np.dot(x, y2) - np.dot(y, x2)])
        self.area = math.sqrt(float(np.dot(area_vector, area_vector)))
        self.centre = v.sum(axis=0) / len(v)
        normal = area_vector / self.area
        self.normal = -normal if np.dot(normal, self.centre - inside) < 0 else normal
        return self


@dataclass(eq=False)
class Solid:
    """A convex piece of the car: its faces, the decals drawn on them, and whether it goes in the label buffer."""

    name: str
    faces: list[Face]
    decals: list[Face]
    centre: np.ndarray
    labelled: bool

    def __post_init__(self):
        polygons = self.faces + self.decals
        self._normals = np.array([f.normal for f in polygons])
        self._anchors = np.array([f.vertices[0] for f in polygons])
        self._depth_points = np.array([f.centre for f in polygons])
        self._vertices = np.concatenate([f.vertices for f in polygons])
        self._bounds = np.cumsum([0] + [len(f.vertices) for f in polygons])


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of two 3-vectors (numpy.cross costs ten times more on one pair)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _face(points, material: str, inside: np.ndarray, part: str | None = None) -> Face:
    return Face(np.asarray(points, dtype=float), material, part).orient(inside)


def _side_polygon(car: Car, y: float, x0: float, x1: float) -> list[tuple[float, float, float]]:
    """The lower body's side between ``x0`` and ``x1`` at ``y``, following the hood slope on top."""
    c = car.clearance
    top = [(x1, y, car.side_top(x1))]
    if x0 < car.cabin_front < x1:
        top.append((car.cabin_front, y, car.beltline))
    top.append((x0, y, car.side_top(x0)))
    return [(x0, y, c), (x1, y, c), *top]


def _rect_x(x: float, y0: float, y1: float, z0: float, z1: float) -> list[tuple[float, float, float]]:
    return [(x, y0, z0), (x, y1, z0), (x, y1, z1), (x, y0, z1)]


def _disc_y(y: float, x: float, z: float, radius: float, sides: int, start: float = 0.0, stop: float = 2 * math.pi):
    """A regular polygon (or a slice of one, from ``start`` to ``stop``) in the plane y = const."""
    full = stop - start >= 2 * math.pi - 1e-9
    angles = np.linspace(start, stop, sides, endpoint=not full)
    return np.stack([x + radius * np.cos(angles), np.full(sides, y), z + radius * np.sin(angles)], axis=1)


def _body(car: Car) -> Solid:
    """The lower body: hood, trunk deck, front and back faces with their bumpers, doors and panels."""
    hw, c, belt = car.width / 2, car.clearance, car.beltline
    front, back = car.length / 2, -car.length / 2
    hood_z = car.hood_front_height
    inside = np.array([0.0, 0.0, (c + belt) / 2])
    bumper_top = c + car.bumper_fraction * (hood_z - c)
    rear_bumper_top = c + car.bumper_fraction * (belt - c)
    faces = [
        _face([(car.cabin_front, -hw, belt), (car.cabin_front, hw, belt), (front, hw, hood_z), (front, -hw, hood_z)],
              "body", inside, "hood"),
        _face(_rect_x(front, -hw, hw, c, bumper_top), "bumper", inside, "front_bumper"),
        _face(_rect_x(front, -hw, hw, bumper_top, hood_z), "body", inside),
        _face(_rect_x(back, -hw, hw, rear_bumper_top, belt), "body", inside, "rear"),
        _face(_rect_x(back, -hw, hw, c, rear_bumper_top), "bumper", inside),
    ]
    if car.cabin_rear - back > 0.02:
        faces.append(_face([(back, -hw, belt), (back, hw, belt), (car.cabin_rear, hw, belt),
                            (car.cabin_rear, -hw, belt)], "body", inside))
    decals = []
    for side, y in (("left", hw), ("right", -hw)):
        faces += [
            _face(_side_polygon(car, y, back, car.door_rear), "body", inside),
            _face(_side_polygon(car, y, car.door_rear, car.door_split), "body", inside, f"backdoor_{side}"),
            _face(_side_polygon(car, y, car.door_split, car.door_front), "body", inside, f"frontdoor_{side}"),
            _face(_side_polygon(car, y, car.door_front, front), "body", inside),
        ]
        decals += _side_decals(car, y, inside)
    decals += _front_decals(car, bumper_top, inside) + _rear_decals(car, rear_bumper_top, inside)
    return Solid("body", faces, decals, inside, labelled=True)


def _side_decals(car: Car, y: float, inside: np.ndarray) -> list[Face]:
    """Wheel arches, wheels, door seams and handles on one side (``y`` = +-width/2)."""
    r, c, belt = car.wheel_radius, car.clearance, car.beltline
    decals = []
    for axle in (car.front_axle, car.rear_axle):
        arch = min(1.1 * r, car.side_top(axle + 1.1 * r) - r - 0.02)
        decals += [
            _face(_disc_y(y, axle, r, arch, 9, 0.0, math.pi), "arch", inside),
            _face(_disc_y(y, axle, r, r, 14), "tyre", inside),
            _face(_disc_y(y, axle, r, 0.62 * r, 10), "rim", inside),
            _face(_disc_y(y, axle, r, 0.16 * r, 6), "tyre", inside),
        ]
    top = belt - 0.02
    for x0, x1 in ((car.door_rear, car.door_split), (car.door_split, car.door_front)):
        decals.append(_face([(x0, y, c + 0.03), (x1, y, c + 0.03), (x1, y, top), (x0, y, top)], "seam", inside))
        handle_x = x1 - 0.12
        handle_z = belt - 0.12 * car.body_height
        decals.append(_face([(handle_x - 0.12, y, handle_z - 0.02), (handle_x, y, handle_z - 0.02),
                             (handle_x, y, handle_z + 0.02), (handle_x - 0.12, y, handle_z + 0.02)], "trim", inside))
    return decals


def _front_decals(car: Car, bumper_top: float, inside: np.ndarray) -> list[Face]:
    """Headlights near the corners and a grille between them, above the bumper."""
    hw, x = car.width / 2, car.length / 2
    panel = car.hood_front_height - bumper_top
    lamp = 0.28 * hw
    z0, z1 = bumper_top + 0.2 * panel, bumper_top + 0.8 * panel
    inner = hw - 0.06 - lamp
    return [
        _face(_rect_x(x, inner, hw - 0.06, z0, z1), "headlight", inside),
        _face(_rect_x(x, -hw + 0.06, -inner, z0, z1), "headlight", inside),
        _face(_rect_x(x, -inner + 0.06, inner - 0.06, z0, bumper_top + 0.7 * panel), "grille", inside),
    ]


def _rear_decals(car: Car, rear_bumper_top: float, inside: np.ndarray) -> list[Face]:
    """Tail lights near the corners and a number plate on the tailgate panel."""
    hw, x = car.width / 2, -car.length / 2
    panel = car.beltline - rear_bumper_top
    lamp = 0.3 * hw
    z0, z1 = rear_bumper_top + 0.45 * panel, rear_bumper_top + 0.85 * panel
    decals = [
        _face(_rect_x(x, hw - 0.05 - lamp, hw - 0.05, z0, z1), "taillight", inside),
        _face(_rect_x(x, -hw + 0.05, -hw + 0.05 + lamp, z0, z1), "taillight", inside),
    ]
    plate_z = rear_bumper_top + 0.08 * panel
    decals.append(_face(_rect_x(x, -0.26, 0.26, plate_z, plate_z + min(0.11, 0.3 * panel)), "plate", inside))
    return decals


def _cabin(car: Car) -> Solid:
    """The cabin frustum: windscreen and rear-window faces, leaning sides, and the roof; windows as decals."""
    hw, belt, top = car.width / 2, car.beltline, car.height
    rw = car.roof_width_fraction * hw
    cr, cf, rr, rf = car.cabin_rear, car.cabin_front, car.roof_rear, car.roof_front
    inside = np.array([(cr + cf) / 2, 0.0, belt + car.cabin_height / 3])
    windscreen = [(cf, -hw, belt), (cf, hw, belt), (rf, rw, top), (rf, -rw, top)]
    back = [(cr, hw, belt), (cr, -hw, belt), (rr, -rw, top), (rr, rw, top)]
    faces = [
        _face(windscreen, "pillar", inside),
        _face(back, "pillar", inside),
        _face([(rr, -rw, top), (rf, -rw, top), (rf, rw, top), (rr, rw, top)], "roof", inside, "roof"),
    ]
    decals = [_face(_inset(windscreen, 0.07, 0.07, 0.05, 0.08), "window", inside),
              _face(_inset(back, 0.08, 0.08, 0.1, 0.1), "window", inside)]
    for sign in (1.0, -1.0):
        faces.append(_face([(cr, sign * hw, belt), (cf, sign * hw, belt), (rf, sign * rw, top), (rr, sign * rw, top)],
                           "pillar", inside))
        decals += [_face(w, "window", inside) for w in _side_windows(car, sign)]
    return Solid("cabin", faces, decals, inside, labelled=True)


def _inset(quad, left: float, right: float, bottom: float, top: float) -> np.ndarray:
    """A smaller quad inside ``quad`` (corners bottom-left, bottom-right, top-right, top-left), margins as fractions."""
    p00, p10, p11, p01 = (np.asarray(p, dtype=float) for p in quad)

    def at(u: float, v: float) -> np.ndarray:
        return (1 - v) * ((1 - u) * p00 + u * p10) + v * ((1 - u) * p01 + u * p11)

    return np.array([at(left, bottom), at(1 - right, bottom), at(1 - right, 1 - top), at(left, 1 - top)])


def _side_windows(car: Car, sign: float) -> list[np.ndarray]:
    """Front and rear side windows on one cabin side, split by a B pillar above the door split."""
    hw, rw = car.width / 2, car.roof_width_fraction * car.width / 2
    margin, pillar = 0.07, 0.05
    levels = (0.1, 0.88)  # window bottom and top as shares of the cabin height

    def point(x: float, v: float) -> tuple[float, float, float]:
        return (x, sign * (hw + v * (rw - hw)), car.beltline + v * car.cabin_height)

    def rear_end(v: float) -> float:
        return car.cabin_rear + v * (car.roof_rear - car.cabin_rear) + margin

    def front_end(v: float) -> float:
        return car.cabin_front - v * (car.cabin_front - car.roof_front) - margin

    windows = []
    for lo, hi in ((rear_end, lambda v: car.door_split - pillar), (lambda v: car.door_split + pillar, front_end)):
        x0 = [max(lo(v), rear_end(v)) for v in levels]
        x1 = [min(hi(v), front_end(v)) for v in levels]
        if min(x1[0] - x0[0], x1[1] - x0[1]) > 0.08:
            windows.append(np.array([point(x0[0], levels[0]), point(x1[0], levels[0]),
                                     point(x1[1], levels[1]), point(x0[1], levels[1])]))
    return windows


def _tyre(car: Car, axle: float, side: float) -> Solid:
    """A ten-sided prism just inside the body's side, drawn before the body so the body hides its top."""
    r, width = 0.98 * car.wheel_radius, car.tyre_width
    y_mid = side * (car.width / 2 - width / 2 - 0.01)
    centre = np.array([axle, y_mid, car.wheel_radius])
    ring = _disc_y(0.0, axle, car.wheel_radius, r, 10)
    outer, inner = ring + [0, y_mid + width / 2, 0], ring + [0, y_mid - width / 2, 0]
    faces = [_face(outer, "tyre", centre), _face(inner, "tyre", centre)]
    for i in range(10):
        j = (i + 1) % 10
        faces.append(_face([outer[i], outer[j], inner[j], inner[i]], "tyre", centre))
    return Solid(f"tyre_{axle:+.2f}_{side:+.0f}", faces, [], centre, labelled=False)


@lru_cache(maxsize=8)
def car_solids(car: Car) -> tuple[Solid, ...]:
    """The car's convex solids: four tyres, the lower body and the cabin (read-only, cached per car)."""
    tyres = tuple(_tyre(car, axle, side) for axle in (car.front_axle, car.rear_axle) for side in (1.0, -1.0))
    return (*tyres, _body(car), _cabin(car))


def car_parts(car: Car) -> dict[str, Face]:
    """The scored parts' faces by part name (``PARTS``): vertices, outward normal, centre, area."""
    return {f.part: f for solid in car_solids(car) for f in solid.faces if f.part is not None}


# ----------------------------------------------------------------------------------------------
# The camera
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Camera:
    """A pinhole camera. ``rotation`` rows are the world directions of image right, image down and the view.

    ``focal`` and ``principal`` (the image point of the optical axis) are in pixels of an image of
    ``size`` = (width, height); pixel (i, j) covers [i, i+1) x [j, j+1).
    """

    position: np.ndarray
    rotation: np.ndarray
    focal: float
    principal: tuple[float, float]
    size: tuple[int, int]

    @classmethod
    def look_at(cls, position, target, focal: float, size: tuple[int, int] = DEFAULT_SIZE, roll: float = 0.0,
                principal_offset: tuple[float, float] = (0.0, 0.0)) -> Camera:
        """A camera at ``position`` looking at ``target`` with the world z axis up in the image, then rolled
        by ``roll`` degrees about the view direction; ``principal_offset`` moves the optical axis off the
        image centre (an off-centre crop of a larger photo)."""
        position, target = np.asarray(position, dtype=float), np.asarray(target, dtype=float)
        forward = target - position
        forward /= np.linalg.norm(forward)
        right = _cross(forward, np.array([0.0, 0.0, 1.0]))
        if np.linalg.norm(right) < 1e-9:
            raise ValueError("the camera cannot look straight up or down")
        right /= np.linalg.norm(right)
        down = _cross(forward, right)
        a = math.radians(roll)
        right, down = math.cos(a) * right + math.sin(a) * down, -math.sin(a) * right + math.cos(a) * down
        principal = (size[0] / 2 + principal_offset[0], size[1] / 2 + principal_offset[1])
        return cls(position, np.stack([right, down, forward]), float(focal), principal, tuple(size))

    @classmethod
    def looking_at_car(cls, car: Car, azimuth: float, elevation: float, distance: float, focal: float,
                       size: tuple[int, int] = DEFAULT_SIZE, roll: float = 0.0, target_offset=(0.0, 0.0, 0.0),
                       principal_offset: tuple[float, float] = (0.0, 0.0)) -> Camera:
        """A camera ``distance`` metres from the car's centre in the direction (``azimuth``, ``elevation``)
        degrees (see the module's conventions), looking at the centre moved by ``target_offset``."""
        az, el = math.radians(azimuth), math.radians(elevation)
        direction = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        position = car.centre + distance * direction
        return cls.look_at(position, car.centre + np.asarray(target_offset, dtype=float), focal, size, roll,
                           principal_offset)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (n, 3) -> image points (n, 2) in pixels and their depths (n,) along the view."""
        local = (np.asarray(points, dtype=float) - self.position) @ self.rotation.T
        depth = local[:, 2]
        return np.asarray(self.principal) + self.focal * local[:, :2] / depth[:, None], depth

    def scaled(self, factor: float) -> Camera:
        """The same view rendered at ``factor`` times the resolution."""
        size = (max(1, round(self.size[0] * factor)), max(1, round(self.size[1] * factor)))
        principal = (self.principal[0] * factor, self.principal[1] * factor)
        return replace(self, focal=self.focal * factor, principal=principal, size=size)


def camera_angles(car: Car, camera: Camera) -> tuple[float, float]:
    """(azimuth in [0, 360), elevation) in degrees of the camera's position seen from the car's centre."""
    d = camera.position - car.centre
    azimuth = math.degrees(math.atan2(d[1], d[0])) % 360.0
    elevation = math.degrees(math.atan2(d[2], math.hypot(d[0], d[1])))
    return azimuth, elevation


def _bounding_box(car: Car) -> np.ndarray:
    hl, hw = car.length / 2, car.width / 2
    return np.array([(x, y, z) for x in (-hl, hl) for y in (-hw, hw) for z in (0.0, car.height)])


def random_camera(car: Car, rng: np.random.Generator, size: tuple[int, int] = DEFAULT_SIZE,
                  elevation_range: tuple[float, float] = ELEVATION_RANGE) -> Camera:
    """A random photo of ``car``: any azimuth, elevation 0-45 (``elevation_range``: another camera height, for
    photos unlike the built-in data), the car filling 30-95% of the frame, off-centre."""
    azimuth = rng.uniform(0.0, 360.0)
    elevation = rng.uniform(*elevation_range)
    roll = rng.uniform(-MAX_ROLL, MAX_ROLL)
    focal = size[0] / 2 / math.tan(math.radians(rng.uniform(*FOV_RANGE)) / 2)
    fill = rng.uniform(*FILL_RANGE)
    offset = rng.uniform(-1, 1, 3) * [0.15 * car.length, 0.15 * car.width, 0.1 * car.height]
    corners = _bounding_box(car)
    radius = float(np.linalg.norm(corners - car.centre, axis=1).max())
    distance = 3 * radius

    def shoot(d: float, principal_offset=(0.0, 0.0)) -> Camera:
        return Camera.looking_at_car(car, azimuth, elevation, d, focal, size, roll, offset, principal_offset)

    for _ in range(4):  # the car's image shrinks about as 1/distance: a few fixed-point steps
        uv, depth = shoot(distance).project(corners)
        extent = max(np.ptp(uv[:, 0]) / size[0], np.ptp(uv[:, 1]) / size[1])
        distance = max(distance * extent / fill, radius * 1.25)
    camera = shoot(distance)
    uv, depth = camera.project(corners)
    shift = []
    for axis in (0, 1):
        lo, hi = uv[:, axis].min(), uv[:, axis].max()
        room = size[axis] - (hi - lo)
        start = rng.uniform(0, room) if room > 0 else room / 2
        shift.append(start - lo)
    return shoot(distance, (shift[0], shift[1]))


# ----------------------------------------------------------------------------------------------
# Visibility, drawing order and scores
# ----------------------------------------------------------------------------------------------


@dataclass
class _Polygon:
    """One polygon to draw: its face, flat image coordinates, and its label (0 = not in the label buffer)."""

    face: Face
    points: list[float]
    label: int


def _solid_order(car: Car, camera: Camera) -> list[Solid]:
    """Solids far to near: tyres first (the body hides them; they hide nothing of it, the camera being
    above their bottoms), then body and cabin, which the plane z = beltline separates: the one on the
    camera's side of that plane is drawn last."""
    solids = car_solids(car)
    tyres = sorted(solids[:4], key=lambda s: -float(np.linalg.norm(s.centre - camera.position)))
    body, cabin = solids[4], solids[5]
    return tyres + ([body, cabin] if camera.position[2] >= car.beltline else [cabin, body])


def _scene(car: Car, camera: Camera) -> list[_Polygon]:
    """Every camera-facing polygon in drawing order: per solid, faces far to near, then decals."""
    if camera.position[2] <= car.clearance:
        raise ValueError("the camera must be above the bottom of the car's body")
    polygons = []
    for solid in _solid_order(car, camera):
        facing = np.einsum("ij,ij->i", solid._normals, camera.position - solid._anchors) > 0
        if not facing.any():
            continue
        uv, depth = camera.project(solid._vertices)
        if depth.min() <= 1e-3:
            raise ValueError("the camera is too close to the car: part of it is behind the camera")
        centre_depth = (solid._depth_points - camera.position) @ camera.rotation[2]
        n_faces = len(solid.faces)
        faces = [i for i in np.flatnonzero(facing[:n_faces])]
        faces.sort(key=lambda i: -centre_depth[i])
        decals = np.flatnonzero(facing[n_faces:]) + n_faces
        everything = solid.faces + solid.decals
        for i in [*faces, *decals]:
            face = everything[i]
            label = 0
            if solid.labelled and i < n_faces:
                label = _PART_ID[face.part] if face.part else _OTHER_ID
            polygons.append(_Polygon(face, uv[solid._bounds[i]:solid._bounds[i + 1]].ravel().tolist(), label))
    return polygons


def _label_buffer(scene: list[_Polygon], size: tuple[int, int]) -> Image.Image:
    """Each pixel's label: which car face the picture shows there (0: no car face)."""
    labels = Image.new("L", size, 0)
    draw = ImageDraw.Draw(labels)
    for polygon in scene:
        if polygon.label:
            draw.polygon(polygon.points, fill=polygon.label)
    return labels


def part_masks(car: Car, camera: Camera) -> dict[str, np.ndarray]:
    """Where each scored part shows in a photo by ``camera``: a boolean ``(height, width)`` mask per part
    (``PARTS`` order), from the same label buffer the scores are counted in. For checking what a model
    looks at (``benchmarks/bench_saliency.py``)."""
    labels = np.asarray(_label_buffer(_scene(car, camera), camera.size))
    return {part: labels == _PART_ID[part] for part in PARTS}


def headon_polygon(face: Face, camera: Camera) -> np.ndarray:
    """The face's image (k, 2) through a camera on its normal at this camera's distance from the face's
    centre, same focal length: the face is then perpendicular to the view, so it is just scaled by
    focal / distance (in-plane axes: first edge and normal x first edge)."""
    distance = float(np.linalg.norm(camera.position - face.centre))
    e1 = face.vertices[1] - face.vertices[0]
    e1 /= np.linalg.norm(e1)
    e2 = _cross(face.normal, e1)
    return (face.vertices - face.centre) @ np.stack([e1, e2]).T * (camera.focal / distance)


def shoelace_area(points: np.ndarray) -> float:
    """Area of a simple polygon (k, 2)."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _filled_pixels(points: np.ndarray) -> int:
    """How many pixels the polygon rasteriser fills for ``points``: the head-on area, counted like the
    visible area so the rasteriser's edge allowance cancels in the ratio."""
    lo = np.floor(points.min(axis=0)) - 1
    shifted = points - lo
    width, height = (np.ceil(shifted.max(axis=0)) + 2).astype(int)
    scratch = Image.new("L", (int(width), int(height)), 0)
    ImageDraw.Draw(scratch).polygon(shifted.ravel().tolist(), fill=1)
    return scratch.histogram()[1]


def _scores(car: Car, camera: Camera, labels: Image.Image) -> dict[str, float]:
    """Perspective scores from the label buffer (see the module docstring); ``camera`` is the buffer's camera."""
    visible = labels.histogram()
    scores = {}
    for part, face in car_parts(car).items():
        pixels = visible[_PART_ID[part]]
        scores[part] = min(1.0, pixels / _filled_pixels(headon_polygon(face, camera))) if pixels else 0.0
    return {part: scores[part] for part in PARTS}


def part_scores(car: Car, camera: Camera) -> dict[str, float]:
    """The perspective score of every part (``PARTS`` order) for a photo of ``car`` by ``camera``.

    Geometry only (no colours, no randomness); identical to the scores ``render`` returns for the
    same car and camera.
    """
    big = camera.scaled(SUPERSAMPLE)
    return _scores(car, big, _label_buffer(_scene(car, big), big.size))


# ----------------------------------------------------------------------------------------------
# Appearance and rendering
# ----------------------------------------------------------------------------------------------


@dataclass
class Look:
    """Colours per material (0-255 RGB) and the lighting of one photo."""

    colours: dict[str, np.ndarray]
    light: np.ndarray  # unit vector towards the light
    ambient: float
    diffuse: float

    def shade(self, face: Face) -> tuple[int, int, int]:
        """Lambert: colour * (ambient + diffuse * max(0, n.l))."""
        factor = self.ambient + self.diffuse * max(0.0, float(np.dot(face.normal, self.light)))
        r, g, b = np.minimum(self.colours[face.material] * factor, 255.0)
        return int(r), int(g), int(b)


def _body_colour(rng: np.random.Generator) -> np.ndarray:
    """Car paint: a quarter white, silver, grey or black; the rest any hue."""
    if rng.uniform() < 0.25:
        return np.full(3, rng.choice([235.0, 190.0, 120.0, 35.0])) + rng.uniform(-10, 10, 3)
    hue, saturation, value = rng.uniform(0, 1), rng.uniform(0.35, 0.9), rng.uniform(0.35, 0.95)
    rgb = np.array([math.fabs(math.fmod(hue * 6 + k, 6) - 3) - 1 for k in (0, 4, 2)]).clip(0, 1)
    return 255 * value * (1 - saturation + saturation * rgb)


def random_look(rng: np.random.Generator) -> Look:
    """Random paint, trim and lighting (light from above, any direction around)."""
    body = _body_colour(rng)
    dark_plastic = np.full(3, rng.uniform(30, 70))
    glass = np.array([30.0, 40.0, 55.0]) + rng.uniform(0, 40, 3)
    colours = {
        "body": body,
        "pillar": body if rng.uniform() < 0.7 else np.full(3, 25.0),
        "roof": body if rng.uniform() < 0.8 else np.full(3, rng.choice([25.0, 230.0])),
        "bumper": body if rng.uniform() < 0.6 else dark_plastic,
        "window": glass,
        "tyre": np.full(3, rng.uniform(18, 40)),
        "rim": np.full(3, rng.uniform(130, 215)),
        "arch": np.full(3, 15.0),
        "headlight": np.array([235.0, 235.0, 220.0]) + rng.uniform(-15, 15, 3),
        "taillight": np.array([rng.uniform(150, 220), rng.uniform(10, 40), rng.uniform(10, 40)]),
        "grille": np.full(3, rng.uniform(15, 50)),
        "plate": np.array([225.0, 225.0, 210.0]),
        "seam": body * 0.45,
        "trim": dark_plastic if rng.uniform() < 0.5 else np.full(3, 190.0),
    }
    azimuth, elevation = rng.uniform(0, 2 * math.pi), math.radians(rng.uniform(20, 75))
    light = np.array([math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth),
                      math.sin(elevation)])
    return Look(colours, light, ambient=rng.uniform(0.35, 0.6), diffuse=rng.uniform(0.4, 0.75))


_GROUNDS = ([105, 105, 108], [80, 115, 55], [165, 145, 110], [170, 170, 165], [95, 80, 65])
_SKIES = (([200, 220, 240], [90, 140, 210]), ([205, 205, 210], [150, 155, 165]),
          ([240, 200, 160], [110, 120, 170]), ([215, 205, 185], [175, 165, 150]))


def _background(camera: Camera, rng: np.random.Generator) -> Image.Image:
    """Sky and ground at half the output resolution (vectorised per pixel ray): ground where a pixel's
    ray points down, with a tiled texture on the ground plane seen in perspective and haze with distance;
    a sky gradient above the horizon; coarse noise over both."""
    low = camera.scaled(0.5)
    w, h = low.size
    xs = (np.arange(w) + 0.5 - low.principal[0]) / low.focal
    ys = (np.arange(h) + 0.5 - low.principal[1]) / low.focal
    rot = low.rotation
    ray = [rot[0, k] * xs[None, :] + rot[1, k] * ys[:, None] + rot[2, k] for k in range(3)]
    length = np.sqrt(ray[0] ** 2 + ray[1] ** 2 + ray[2] ** 2)
    ground = ray[2] < 0
    reach = -camera.position[2] / np.minimum(ray[2], -1e-6)  # ray parameter where it meets z = 0
    gx, gy = camera.position[0] + reach * ray[0], camera.position[1] + reach * ray[1]
    cell = rng.uniform(0.3, 2.0)
    tiles = rng.uniform(-1, 1, (16, 16)) * rng.uniform(0.03, 0.18)
    pattern = tiles[np.floor(gy / cell).astype(np.int64) & 15, np.floor(gx / cell).astype(np.int64) & 15]
    haze = 1 - np.exp(-reach * length / rng.uniform(15, 80))

    horizon, zenith = (np.array(c, dtype=float) + rng.uniform(-20, 20, 3) for c in _SKIES[rng.integers(len(_SKIES))])
    soil = np.array(_GROUNDS[rng.integers(len(_GROUNDS))], dtype=float) + rng.uniform(-20, 20, 3)
    up = np.sqrt(np.clip(ray[2] / length, 0, 1))[..., None]
    sky = horizon + (zenith - horizon) * up
    land = soil * (1 + pattern[..., None])
    land = land + (horizon - land) * (0.8 * haze[..., None])
    rgb = np.where(ground[..., None], land, sky)
    coarse = Image.fromarray(rng.uniform(-1, 1, (4, 5)).astype(np.float32))  # float32: mode "F"
    rgb *= 1 + rng.uniform(0.03, 0.12) * np.asarray(coarse.resize((w, h), Image.Resampling.BICUBIC))[..., None]
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def _draw_distractors(draw: ImageDraw.ImageDraw, size: tuple[int, int], rng: np.random.Generator) -> None:
    """A few flat shapes (boxes, blobs, polygons, poles) behind the car, so the car is not the only object."""
    width, height = size
    for _ in range(int(rng.integers(1, 6))):
        kind = int(rng.integers(4))
        colour = tuple(int(c) for c in rng.integers(20, 236, 3))
        x0, y0 = rng.uniform(-0.1, 1.0) * width, rng.uniform(-0.1, 1.0) * height
        w, h = rng.uniform(0.05, 0.35) * width, rng.uniform(0.05, 0.35) * height
        if kind == 0:
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=colour)
        elif kind == 1:
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=colour)
        elif kind == 2:
            points = np.column_stack([x0 + rng.uniform(0, w, 5), y0 + rng.uniform(0, h, 5)])
            draw.polygon(points.ravel().tolist(), fill=colour)
        else:
            draw.line([x0, y0, x0 + rng.uniform(-0.2, 0.2) * width, y0 + h * 2], fill=colour,
                      width=int(rng.integers(2, 9)))


def _draw_shadow(draw: ImageDraw.ImageDraw, car: Car, camera: Camera, rng: np.random.Generator) -> None:
    """A translucent dark footprint on the ground, slightly larger than the car."""
    hl, hw = car.length / 2 + 0.15, car.width / 2 + 0.1
    footprint = np.array([(-hl, -hw, 0.0), (hl, -hw, 0.0), (hl, hw, 0.0), (-hl, hw, 0.0)])
    uv, depth = camera.project(footprint)
    alpha = int(rng.integers(60, 150))
    if depth.min() > 1e-3:
        draw.polygon(uv.ravel().tolist(), fill=(0, 0, 0, alpha))


def render(car: Car, camera: Camera, rng: np.random.Generator,
           backdrop: tuple[int, int, int] | None = None) -> tuple[Image.Image, dict[str, float]]:
    """A random-looking photo of ``car`` by ``camera`` (``camera.size``) and its perspective scores.

    The randomness (paint, light, background, distractors, blur) comes from ``rng``; the scores do
    not depend on it and equal ``part_scores(car, camera)``. ``backdrop`` replaces the sky and ground by
    one colour (a studio's wall; the random draws stay the same, so the photo is otherwise unchanged).
    """
    look = random_look(rng)
    big = camera.scaled(SUPERSAMPLE)
    canvas = _background(camera, rng).resize(big.size, Image.Resampling.BILINEAR)
    if backdrop is not None:
        canvas = Image.new("RGB", big.size, backdrop)
    draw = ImageDraw.Draw(canvas, "RGBA")  # RGBA drawing blends the translucent shadow
    _draw_distractors(draw, big.size, rng)
    _draw_shadow(draw, car, big, rng)
    scene = _scene(car, big)
    seam_width = max(1, SUPERSAMPLE // 2)
    for polygon in scene:
        colour = look.shade(polygon.face)
        if polygon.face.material == "seam":
            draw.line(polygon.points + polygon.points[:2], fill=colour, width=seam_width)
        else:
            draw.polygon(polygon.points, fill=colour)
    scores = _scores(car, big, _label_buffer(scene, big.size))
    image = canvas.reduce(SUPERSAMPLE)  # a box filter: each output pixel averages its 2x2 block
    radius = rng.uniform(0.0, MAX_BLUR)
    if radius > 0.05:
        image = image.filter(ImageFilter.GaussianBlur(radius))
    return image, scores
