"""``cpmosaic camera show NAME_OR_PATH``: print a camera's geometry."""

from __future__ import annotations

import argparse
import json
import sys

from .options import camera_type


def register(sub) -> None:
    p = sub.add_parser("camera", help="show camera geometry", description=__doc__)
    csub = p.add_subparsers(dest="camera_command", metavar="ACTION", required=True)
    show = csub.add_parser("show", help="print detectors and amps with focal-plane positions")
    show.add_argument("camera", metavar="NAME_OR_PATH", type=camera_type,
                      help="LSSTCam, LSSTComCam, LATISS or a camera file")
    show.add_argument("--format", choices=("table", "json"), default="table")
    show.add_argument("--detector", action="append", help="only this detector (name or id; repeatable)")
    show.set_defaults(func=run_show)


def camera_document(camera, detectors=None) -> dict:
    """The JSON document of ``camera show --format json``."""

    def pts(a):
        return [[round(float(x), 6), round(float(y), 6)] for x, y in a]

    out = []
    for det in camera:
        if detectors and det.name not in detectors and str(det.id) not in detectors:
            continue
        out.append(
            {
                "id": det.id,
                "name": det.name,
                "type": det.type,
                "physical_type": det.physical_type,
                "n_quarter": det.n_quarter,
                "center_mm": [round(v, 6) for v in det.center_mm],
                "corners_mm": pts(det.corners_mm),
                "amps": [
                    {
                        "name": a.name,
                        "center_mm": [round(v, 6) for v in det.box_center_mm(a.bbox)],
                        "corners_mm": pts(det.box_corners_mm(a.bbox)),
                    }
                    for a in det.amplifiers
                ],
            }
        )
    return {"name": camera.name, "detectors": out}


def run_show(args: argparse.Namespace) -> int:
    from ..camera import get_camera

    camera = get_camera(args.camera)
    doc = camera_document(camera, set(args.detector) if args.detector else None)
    if args.format == "json":
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    w = sys.stdout.write
    w(f"{camera.name}: {len(camera)} detectors\n")
    w(f"{'id':>4} {'name':<8} {'type':<9} {'physical':<8} {'q':>1} {'x_mm':>9} {'y_mm':>9} {'amps':>4}\n")
    for d in doc["detectors"]:
        x, y = d["center_mm"]
        w(f"{d['id']:>4} {d['name']:<8} {d['type']:<9} {d['physical_type']:<8} {d['n_quarter']:>1} "
          f"{x:>9.3f} {y:>9.3f} {len(d['amps']):>4}\n")
    return 0
