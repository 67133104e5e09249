"""The toy world of the tiny model.

A 128x128 RGB canvas with a black background and exactly one coloured shape inside a 32x32 box at one of nine
positions.  Everything here is deterministic; `world_json()` is dumped to `models/tiny/world.json` so that the
TypeScript tests can render and check the same images.

Geometry (pixel (x, y) has its centre at (x + 0.5, y + 0.5)):
  * square   - the whole 32x32 box is filled;
  * circle   - disc centred at the box centre (bx + 16, by + 16), radius 16: (cx - X)^2 + (cy - Y)^2 <= 16^2;
  * triangle - apex at the top middle (bx + 16, by), base = the full bottom edge (y = by + 32, x in [bx, bx + 32]):
               inside when Y >= by and |X - (bx + 16)| <= (Y - by) / 2.
Positions: box top-left (x, y) with x in {16, 48, 80} (left, centre, right), y in {16, 48, 80} (top, middle, bottom);
position index p = row * 3 + col.  Every box is aligned to the 16-pixel token grid (2x2 cells).

Held out: combinations (ci, si, pi) with (ci + si + pi) % 3 == 0 never appear in any training image.
"""

import numpy as np

SIZE = 128
GRID_FACTOR = 16
BOX = 32
BACKGROUND = (0, 0, 0)

COLOURS = [
    ("red", (220, 40, 40)),
    ("green", (40, 180, 60)),
    ("blue", (40, 80, 220)),
    ("yellow", (230, 210, 40)),
    ("purple", (150, 60, 200)),
    ("orange", (240, 140, 30)),
]
COLOUR_NAMES = [c[0] for c in COLOURS]
SHAPES = ["square", "circle", "triangle"]
_XS = [16, 48, 80]
_YS = [16, 48, 80]
POSITION_NAMES = ["top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right"]
POSITIONS = [(POSITION_NAMES[r * 3 + c], (_XS[c], _YS[r])) for r in range(3) for c in range(3)]

CAPTION_TEMPLATE = "a {colour} {shape} at the {position}"
EDIT_TEMPLATES = {
    "colour": "make it {colour}",
    "position": "move it to the {position}",
    "shape": "make it a {shape}",
}
QUESTIONS = {
    "colour": "what colour is the shape ?",
    "shape": "what shape is it ?",
    "position": "where is the shape ?",
}

ALL_COMBOS = [(ci, si, pi) for ci in range(len(COLOURS)) for si in range(len(SHAPES)) for pi in range(len(POSITIONS))]


def is_held_out(ci, si, pi):
    return (ci + si + pi) % 3 == 0


HELD_OUT = [c for c in ALL_COMBOS if is_held_out(*c)]
TRAIN = [c for c in ALL_COMBOS if not is_held_out(*c)]


def shape_mask(si, pi):
    """Boolean [SIZE, SIZE] (row = y, column = x) of the shape's pixels."""
    bx, by = POSITIONS[pi][1]
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    X = xs + 0.5
    Y = ys + 0.5
    inbox = (xs >= bx) & (xs < bx + BOX) & (ys >= by) & (ys < by + BOX)
    shape = SHAPES[si]
    if shape == "square":
        return inbox
    if shape == "circle":
        cx, cy, r = bx + BOX / 2, by + BOX / 2, BOX / 2
        return inbox & ((X - cx) ** 2 + (Y - cy) ** 2 <= r * r)
    if shape == "triangle":
        return inbox & (Y >= by) & (np.abs(X - (bx + BOX / 2)) <= (Y - by) / 2)
    raise ValueError(shape)


def render(ci, si, pi):
    """uint8 image [SIZE, SIZE, 3] (HWC, RGB)."""
    img = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    img[:, :] = BACKGROUND
    img[shape_mask(si, pi)] = COLOURS[ci][1]
    return img


def to_chw01(img):
    """uint8 HWC -> float32 CHW in [0, 1] (the VQ's input convention)."""
    return (img.astype(np.float32) / 255.0).transpose(2, 0, 1).copy()


def caption(ci, si, pi):
    return CAPTION_TEMPLATE.format(colour=COLOURS[ci][0], shape=SHAPES[si], position=POSITIONS[pi][0])


def edit_instruction(kind, ci, si, pi):
    """Instruction that turns any image into one with the given attribute value (ci/si/pi of the *output*)."""
    if kind == "colour":
        return EDIT_TEMPLATES["colour"].format(colour=COLOURS[ci][0])
    if kind == "position":
        return EDIT_TEMPLATES["position"].format(position=POSITIONS[pi][0])
    if kind == "shape":
        return EDIT_TEMPLATES["shape"].format(shape=SHAPES[si])
    raise ValueError(kind)


def answer(kind, ci, si, pi):
    if kind == "colour":
        return COLOURS[ci][0]
    if kind == "shape":
        return SHAPES[si]
    if kind == "position":
        return POSITIONS[pi][0]
    raise ValueError(kind)


def edits_from(src, allowed):
    """All one-attribute edits (kind, src, dst) from combo `src` whose output satisfies `allowed(dst)`."""
    ci, si, pi = src
    out = []
    for c in range(len(COLOURS)):
        if c != ci and allowed((c, si, pi)):
            out.append(("colour", src, (c, si, pi)))
    for p in range(len(POSITIONS)):
        if p != pi and allowed((ci, si, p)):
            out.append(("position", src, (ci, si, p)))
    for s in range(len(SHAPES)):
        if s != si and allowed((ci, s, pi)):
            out.append(("shape", src, (ci, s, pi)))
    return out


def all_text():
    """Every caption, instruction, question and answer of the world (for the tokenizer's vocabulary)."""
    texts = []
    for ci, si, pi in ALL_COMBOS:
        texts.append(caption(ci, si, pi))
        for kind in ("colour", "position", "shape"):
            texts.append(edit_instruction(kind, ci, si, pi))
            texts.append(answer(kind, ci, si, pi))
    texts.extend(QUESTIONS.values())
    return texts


def world_json():
    return {
        "size": SIZE,
        "gridFactor": GRID_FACTOR,
        "background": list(BACKGROUND),
        "colours": {name: list(rgb) for name, rgb in COLOURS},
        "colourOrder": COLOUR_NAMES,
        "shapes": SHAPES,
        "positions": {name: list(xy) for name, xy in POSITIONS},
        "positionOrder": POSITION_NAMES,
        "boxSize": BOX,
        "geometry": {
            "pixelCentre": "pixel (x, y) is tested at (x + 0.5, y + 0.5); box top-left (bx, by), size 32",
            "square": "the whole box",
            "circle": "(X - (bx + 16))^2 + (Y - (by + 16))^2 <= 16^2",
            "triangle": "Y >= by and |X - (bx + 16)| <= (Y - by) / 2 (apex top middle, base = bottom edge)",
        },
        "caption": CAPTION_TEMPLATE,
        "edits": EDIT_TEMPLATES,
        "questions": {q: kind for kind, q in QUESTIONS.items()},
        "heldOut": {
            "rule": "(colourIndex + shapeIndex + positionIndex) % 3 == 0",
            "note": "indices into colourOrder, shapes, positionOrder; held-out combinations appear in no training "
                    "image",
            "triples": [[COLOURS[c][0], SHAPES[s], POSITIONS[p][0]] for c, s, p in HELD_OUT],
        },
        "checker": {
            "backgroundMaxChannelBelow": 30,
            "colour": "nearest palette colour to the mean foreground RGB",
            "position": "nearest box centre to the foreground bounding-box centre",
            "shape": "nearest fill ratio (foreground pixels / bbox area): square 1, circle 0.785, triangle 0.5",
        },
    }


# ---------------------------------------------------------------------------------------------------------------
# Pixel checker (used by evaluate.py and the tests)

SHAPE_FILL = {"square": 1.0, "circle": np.pi / 4, "triangle": 0.5}


def check_image(img):
    """Classify a uint8 HWC image -> (colour index, shape index, position index) or None when nothing is drawn."""
    img = np.asarray(img)
    fg = img.max(axis=2) >= 30
    if not fg.any():
        return None
    ys, xs = np.nonzero(fg)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    mean = img[fg].astype(np.float64).mean(axis=0)
    pal = np.array([rgb for _, rgb in COLOURS], dtype=np.float64)
    ci = int(np.argmin(((pal - mean) ** 2).sum(axis=1)))
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    centres = np.array([(x + BOX / 2, y + BOX / 2) for _, (x, y) in POSITIONS], dtype=np.float64)
    pi = int(np.argmin(((centres - np.array([cx, cy])) ** 2).sum(axis=1)))
    fill = fg.sum() / float((x1 - x0) * (y1 - y0))
    si = int(np.argmin([abs(fill - SHAPE_FILL[s]) for s in SHAPES]))
    return ci, si, pi
