"""Synthetic car photos with exact perspective scores: the toolkit's built-in training data.

    perspective synth -o DIR -n N --seed S [--size 320x240] [-q]

writes ``DIR/images/000000.jpg ...`` and ``DIR/labels.csv``. Each image shows one procedurally built
car, photographed by a random pinhole camera in front of a random background, and is labelled with
one *perspective score* per car part (``SCORE_COLUMNS``): how well that part is seen in the photo.

Score definition
----------------
score(part) = (visible projected area of the part in this image)
              / (projected area of the part seen head-on: from a camera on the part's outward
                 normal through the part's centre, at the same camera-to-part-centre distance as
                 this camera, with the same focal length),
clipped to [0, 1].

Occlusion counts: a part hidden behind the cabin or another part is not visible. The image frame
cuts: only what lands inside the image is visible. A part facing away from the camera scores 0.
So 1.0 means "photographed completely and head-on" and 0.0 "not visible". (Off the optical axis a
lens stretches a part beyond its head-on area; the clip at 1 absorbs that.)

How it is measured: the visible area is counted on a label buffer drawn together with the colour
image (same supersampled resolution, same drawing order, every car face in its own label), so it is
exactly what the picture shows. The head-on area is the part's polygon projected by that head-on
camera (``headon_polygon``; analytically ``area * (focal / distance)**2``), filled by the same
polygon rasteriser and counted the same way, so the half pixel that polygon filling adds along every
edge cancels and a fully visible part seen head-on scores 1.

Conventions
-----------
World coordinates in metres. The car stands on the ground plane z = 0, centred on the z axis, and
faces +x; z is up; the car's LEFT side is +y (a driver facing +x has +y on the left).
Azimuth is the direction of the camera around the car, from +x towards +y: 0 = in front of the car
(it sees the hood and front bumper), 90 = on the car's left side (it sees the left doors), 180 =
behind, 270 = on the right. Elevation is the camera's angle above the horizontal through the car's
centre (mid height): 0 = level with the car's mid height, 45 = looking down. ``view_of`` bins the
azimuth into the eight ``VIEWS``.

Car model (``Car``, ``car_solids``)
-----------------------------------
Convex solids made of planar polygons:

- the lower body: a prism whose side profile is a box with a sloped hood in front of the cabin. Its
  faces are the hood (part ``hood``), the trunk deck, the front face split into the bumper strip
  (part ``front_bumper``) and the grille panel, the back face split into the tailgate/trunk panel
  (part ``rear``) and the rear bumper, and on each side a front fender, the front door, the back
  door (parts ``frontdoor_*``/``backdoor_*``, side panels under the cabin between the wheel arches)
  and a rear quarter panel;
- the cabin on top of it: a frustum with the windscreen face, the rear-window face, two side faces
  and the roof (part ``roof``);
- four tyres: ten-sided prisms, drawn under the body.

Decals are coplanar details drawn on top of their face and never occluding anything else: windows,
head and tail lights, grille, number plate, wheel arches, wheels and rims, door seams and handles.
Proportions (length, width, body and cabin height, cabin position and length, windscreen and rear
window rake, hood slope, wheel size, overhangs) are random per image (``random_car``);
``default_car`` has mid proportions.

Camera model (``Camera``, ``random_camera``)
--------------------------------------------
A pinhole camera: position, rotation (rows: image right, image down, viewing direction), focal
length and principal point in pixels, image size. ``Camera.looking_at_car`` places it by azimuth,
elevation and distance from the car's centre. Random cameras: azimuth uniform in [0, 360),
elevation uniform in [0, 45], horizontal field of view 30-65 degrees, distance so that the car's
bounding box spans 30-95% of the frame, roll within 5 degrees, the look-at point jittered and the
principal point shifted so the car sits off-centre while staying in the frame.

Rendering (``render``)
----------------------
Background: sky gradient above the camera's true horizon, a ground plane below it with a tiled
texture in perspective and haze, coarse noise, and a few random distractor shapes; a soft shadow
under the car. The car: Lambert shading, colour * (ambient + diffuse * max(0, n.l)) with a random
light direction, back-face culling, painter's algorithm. Drawing order: tyres first (far to near),
then the body and the cabin in the order given by the plane z = beltline that separates them (the
one on the camera's side of it is drawn last, which is exact for two solids split by a plane), and
within each solid its faces far to near, then its decals. Polygons are drawn with ``ImageDraw`` at
2x and downsampled for anti-aliasing; then a mild Gaussian blur (radius 0-0.8) and JPEG quality
70-95.

Determinism: image ``i`` of seed ``s`` is drawn from ``numpy.random.default_rng([s, i])`` alone, so
the same seed gives byte-identical files whatever the count.

labels.csv columns: ``filename`` (relative to images/), the ``SCORE_COLUMNS`` (4 decimals),
``azimuth`` and ``elevation`` (degrees, 2 decimals) and ``view`` (one of ``VIEWS``).
"""
from .dataset import IMAGES_DIR, Sample, generate, make_sample
from .scene import (
    LABEL_COLUMNS,
    PARTS,
    SCORE_COLUMNS,
    VIEWS,
    Camera,
    Car,
    camera_angles,
    car_parts,
    default_car,
    headon_polygon,
    part_masks,
    part_scores,
    random_camera,
    random_car,
    render,
    shoelace_area,
    view_of,
)

__all__ = [
    "IMAGES_DIR", "LABEL_COLUMNS", "PARTS", "SCORE_COLUMNS", "VIEWS", "Camera", "Car", "Sample", "camera_angles",
    "car_parts", "default_car", "generate", "headon_polygon", "make_sample", "part_masks", "part_scores",
    "random_camera", "random_car", "render", "shoelace_area", "view_of",
]
