"""Writes Tests/ImaginingTests/Fixtures/compose_golden.safetensors: inputs and outputs of the
Python scene composer (training/generator/compose.py) for the Swift parity test
(Tests/ImaginingTests/SceneComposerParityTests.swift).

Deterministic (no randomness). Each case has a canvas size, and per item a class name, layer,
score and an RGB u8 image that is NOT solid: gradients from the backdrop grey to a colour
(left/right and top/bottom differ, so a flip or transpose shows), thin stripes (so the 3x3 blur
and bilinear resize matter) and grey regions (so the colour mask and the feathered ellipse
matter). Scores are dyadic (exact in float32 and float64) so the box sizes are computed from the
same numbers on both sides. The composed image is stored quantised the way the Swift composer
returns it: u8 = floor(clamp(v * 255 + 0.5, 0, 255)).

Run from the repository root:  PYTHONPATH=. .venv/bin/python tools/make_compose_fixture.py
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402
from training.generator.compose import compose, layout  # noqa: E402

GREY = 200


def gradient(side, colour, direction):
    """Grey at one edge to `colour` at the other; a dark dot near the top-left corner."""
    t = np.linspace(0, 1, side, dtype=np.float64)
    ramp = t[None, :] if direction == "x" else t[:, None]
    ramp = np.broadcast_to(ramp, (side, side))
    c = np.array(colour, np.float64)
    img = GREY + (c - GREY) * ramp[..., None]
    img[side // 5:side // 5 + 3, side // 4:side // 4 + 2] = (20, 20, 20)
    return np.round(img).astype(np.uint8)


def stripes(side, colour, period, vertical):
    """Stripes of `colour` and grey (period in pixels), fading out towards the bottom."""
    idx = np.arange(side)
    on = ((idx // (period // 2)) % 2 == 0)
    mask = np.broadcast_to(on[None, :] if vertical else on[:, None], (side, side)).astype(np.float64)
    fade = np.linspace(1, 0.3, side)[:, None]
    c = np.array(colour, np.float64)
    img = GREY + (c - GREY) * (mask * fade)[..., None]
    return np.round(img).astype(np.uint8)


def checker_ring(side, colour):
    """A ring of `colour` with a checkered centre, grey outside (radial structure)."""
    yy, xx = np.mgrid[0:side, 0:side]
    r = np.hypot(yy - side * 0.4, xx - side * 0.55) / side
    img = np.full((side, side, 3), GREY, np.float64)
    ring = (r > 0.18) & (r < 0.32)
    img[ring] = colour
    chk = (r <= 0.12) & (((yy // 2) + (xx // 2)) % 2 == 0)
    img[chk] = (255, 255, 0)
    return np.round(img).astype(np.uint8)


CASES = [
    # Non-square canvas, three layers, three different scores, two image sizes.
    dict(name="three_layers", width=128, height=96, items=[
        dict(cls="bird", layer="sky", score=0.875, image=gradient(32, (30, 60, 230), "x")),
        dict(cls="dog", layer="ground", score=0.4375, image=stripes(32, (20, 170, 40), 4, True)),
        dict(cls="rain", layer="middle", score=0.625, image=checker_ring(24, (220, 40, 40))),
    ]),
    # Four overlapping items on a small canvas: a score tie (name order for placement, reverse
    # placement for painting), two items in one layer, images larger than their boxes.
    dict(name="four_overlapping", width=80, height=88, items=[
        dict(cls="siren", layer="middle", score=0.5, image=stripes(40, (240, 120, 0), 6, False)),
        dict(cls="engine", layer="ground", score=0.75, image=gradient(40, (90, 30, 160), "y")),
        dict(cls="alarm", layer="middle", score=0.5, image=checker_ring(36, (0, 140, 200))),
        dict(cls="wind", layer="sky", score=0.25, image=gradient(20, (250, 250, 250), "x")),
    ]),
    # Box corners that are exact halves (round half to even, Python's round): two middle items at
    # 0.5 on a 130 x 100 canvas put the first box's x0 at exactly 0.5.
    dict(name="exact_halves", width=130, height=100, items=[
        dict(cls="a", layer="middle", score=0.5, image=gradient(16, (200, 30, 30), "x")),
        dict(cls="b", layer="middle", score=0.5, image=stripes(16, (30, 30, 200), 4, True)),
    ]),
    # A layer name outside sky / middle / ground counts as middle (rank and height).
    dict(name="unknown_layer", width=96, height=96, items=[
        dict(cls="sea", layer="water", score=0.75, image=gradient(24, (20, 90, 200), "y")),
        dict(cls="gull", layer="sky", score=0.5, image=checker_ring(20, (240, 240, 240))),
    ]),
]


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_path = os.path.join(root, "Tests/ImaginingTests/Fixtures/compose_golden.safetensors")
    tensors, meta_cases = {}, []
    for case in CASES:
        items = [dict(**{"class": it["cls"]}, layer=it["layer"], score=it["score"],
                      image=it["image"].astype(np.float32) / 255.0) for it in case["items"]]
        out = compose(items, W=case["width"], H=case["height"])
        q = np.floor(np.clip(out * 255 + 0.5, 0, 255)).astype(np.uint8)
        boxes = [(it["class"], x0, y0, side) for it, x0, y0, side in layout(items, case["width"], case["height"])]
        for k, it in enumerate(case["items"]):
            tensors[f"{case['name']}.item{k}"] = it["image"]
        tensors[f"{case['name']}.out"] = q
        meta_cases.append(dict(name=case["name"], width=case["width"], height=case["height"],
                               items=[dict(name=it["cls"], layer=it["layer"], score=it["score"]) for it in case["items"]],
                               boxes_in_paint_order=boxes))
        print(case["name"], "boxes (class, x0, y0, side) in paint order:", boxes)
    safetensors_io.save(out_path, tensors, {"cases": json.dumps(meta_cases),
                                            "source": "tools/make_compose_fixture.py (training/generator/compose.py)"})
    print("wrote", out_path, os.path.getsize(out_path), "bytes")


if __name__ == "__main__":
    main()
