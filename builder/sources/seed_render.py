"""Pillow drawings for the seed corpus: settings, object icons, signs and text-in-image layouts.

Everything here is a pure function of its arguments and a `random.Random`, so the same plan gives
the same PNG bytes. Three things keep pictures perceptually distinct (pHash looks at the coarse
8x8 DCT of a 32x32 thumbnail): every canvas starts from a seeded grid of flat tinted patches,
layouts, sizes and positions are drawn at random, and a seeded blocky light field shades the
finished picture. Flat shapes keep the PNGs a few KB.

Icons are data: primitives in unit coordinates (0..1 within the icon's box) with colour roles
that each picture resolves to its own palette.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

from PIL import Image, ImageChops, ImageDraw, ImageFont

RGB = tuple[int, int, int]
Box = tuple[float, float, float, float]

SIZES = (256, 288, 320, 352, 384)
PNG_COMPRESS_LEVEL = 6
PALETTE_COLOURS = 128

# Setting key -> (scene description, outdoor?, wall/sky colour, floor/ground colour, decorations)
SETTINGS: dict[str, tuple[str, bool, RGB, RGB, tuple[str, ...]]] = {
    "workbench": ("a workshop bench", False, (196, 186, 160), (122, 88, 58), ("shelf", "pegboard")),
    "lab bench": ("a laboratory bench", False, (214, 222, 226), (90, 98, 104), ("shelf", "tiles")),
    "store": ("a shop aisle", False, (230, 226, 210), (170, 170, 176), ("shelf", "shelf2")),
    "street": ("a city street", True, (150, 200, 235), (96, 96, 100), ("buildings", "road")),
    "desk": ("an office desk", False, (222, 214, 198), (140, 104, 70), ("window", "frame")),
    "park": ("a park", True, (160, 210, 240), (110, 170, 90), ("trees", "sun")),
    "living room": ("a living room", False, (226, 206, 180), (150, 120, 96), ("window", "frame")),
    "kitchen": ("a kitchen counter", False, (236, 232, 220), (176, 150, 120), ("tiles", "cabinet")),
    "garage": ("a garage workshop", False, (176, 176, 170), (110, 110, 112), ("pegboard", "shelf")),
    "table": ("a wooden table", False, (206, 196, 186), (120, 84, 56), ("frame",)),
    "laundry": ("a laundry room", False, (220, 232, 236), (184, 190, 196), ("tiles", "shelf")),
    "bathroom": ("a bathroom shelf", False, (206, 228, 232), (236, 236, 236), ("tiles", "mirror")),
    "city": ("a rooftop above the city", True, (170, 196, 226), (120, 120, 126), ("buildings",)),
    "bedroom": ("a bedroom", False, (214, 200, 226), (160, 130, 110), ("window", "frame")),
    "server room": ("a server room", False, (60, 70, 84), (96, 100, 110), ("lights",)),
    "shop counter": ("a shop counter", False, (232, 220, 196), (128, 96, 72), ("shelf",)),
    "office": ("an office", False, (218, 222, 214), (128, 128, 136), ("window", "shelf")),
    "casino": ("a casino table", False, (110, 30, 40), (30, 110, 60), ("lights",)),
    "polling station": ("a polling station", False, (222, 226, 236), (150, 150, 160),
                        ("flag", "frame")),
    "clinic": ("a doctor's office", False, (226, 238, 240), (190, 196, 200), ("cross", "shelf")),
    "border checkpoint": ("a border checkpoint", True, (176, 206, 230), (150, 140, 120), ("road",)),
    "police station": ("a police station desk", False, (200, 208, 222), (96, 104, 120), ("frame",)),
    "garden": ("a garden", True, (170, 214, 240), (96, 150, 70), ("trees", "fence")),
}

# Icon primitives: (shape, box-or-points, role, *args). Shapes: rect, rrect, ellipse, ring(width),
# poly, line(width), pie(start, end), text(label), lines(n), grid(cols, rows), die(pips), stars(n).
ICONS: dict[str, tuple[tuple, ...]] = {
    "padlock": (("ring", (.25, .05, .75, .65), "m", .09), ("rrect", (.15, .38, .85, .95), "y"),
                ("ellipse", (.44, .55, .56, .68), "k"), ("rect", (.47, .64, .53, .82), "k")),
    "lock pick set": (("rrect", (.02, .12, .28, .7), "d"),
                      ("line", ((.2, .2), (.95, .2)), "m", .03),
                      ("line", ((.2, .4), (.85, .4), (.93, .32)), "m", .03),
                      ("line", ((.2, .6), (.8, .6), (.93, .48)), "m", .03)),
    "chemistry flask": (("poly", ((.4, .05), (.6, .05), (.6, .4), (.92, .95), (.08, .95), (.4, .4)),
                         "w"),
                        ("poly", ((.22, .65), (.78, .65), (.92, .95), (.08, .95)), "g"),
                        ("rect", (.36, .02, .64, .08), "d")),
    "pill bottle": (("rrect", (.25, .25, .75, .97), "o"), ("rect", (.2, .08, .8, .28), "w"),
                    ("rect", (.3, .45, .7, .78), "paper"),
                    ("text", (.32, .48, .68, .75), "k", "Rx")),
    "pills": (("ellipse", (.1, .6, .3, .76), "w"), ("ellipse", (.35, .66, .55, .82), "w"),
              ("ellipse", (.6, .56, .8, .72), "p"), ("ellipse", (.3, .44, .46, .58), "w"),
              ("ellipse", (.62, .8, .78, .94), "p")),
    "shopping bag": (("ring", (.3, .05, .7, .55), "d", .06), ("rect", (.15, .3, .85, .97), "p")),
    "price tag": (("poly", ((.05, .3), (.72, .3), (.95, .5), (.72, .7), (.05, .7)), "paper"),
                  ("ellipse", (.74, .45, .82, .55), "d"),
                  ("text", (.08, .36, .68, .64), "k", "$19.99")),
    "car": (("poly", ((.25, .46), (.36, .18), (.7, .18), (.8, .46)), "p"),
            ("rrect", (.03, .42, .97, .8), "p"),
            ("poly", ((.31, .43), (.39, .24), (.5, .24), (.5, .43)), "b"),
            ("poly", ((.53, .43), (.53, .24), (.66, .24), (.74, .43)), "b"),
            ("ellipse", (.13, .66, .33, .96), "k"), ("ellipse", (.67, .66, .87, .96), "k")),
    "key": (("ring", (.03, .3, .4, .7), "y", .12), ("rect", (.37, .45, .95, .55), "y"),
            ("rect", (.82, .55, .88, .7), "y"), ("rect", (.68, .55, .74, .66), "y")),
    "crowd of people": tuple(
        shape for x, c in ((.02, "p"), (.22, "s"), (.42, "b"), (.62, "r"), (.8, "g"))
        for shape in (("ellipse", (x + .03, .12, x + .15, .32), "skin"),
                      ("rrect", (x, .32, x + .18, .95), c))),
    "protest sign": (("rect", (.46, .45, .54, 1.0), "wood"), ("rect", (.08, .05, .92, .5), "paper"),
                     ("text", (.12, .1, .88, .45), "r", "ENOUGH!")),
    "smartphone": (("rrect", (.3, .05, .7, .95), "k"), ("rect", (.34, .12, .66, .84), "b")),
    "chat bubbles": (("rrect", (.05, .05, .7, .32), "w"), ("rrect", (.3, .38, .95, .65), "g"),
                     ("rrect", (.05, .72, .62, .97), "w"), ("lines", (.1, .1, .62, .28), "d", 2),
                     ("lines", (.36, .43, .88, .6), "w", 2)),
    "baseball bat": (("poly", ((.05, .8), (.1, .86), (.96, .32), (.86, .15)), "wood"),
                     ("ellipse", (.02, .78, .11, .9), "d")),
    "ball": (("ellipse", (.3, .5, .7, .9), "w"), ("ring", (.3, .5, .7, .9), "r", .03)),
    "poster": (("rect", (.1, .05, .9, .95), "paper"), ("rect", (.2, .14, .8, .5), "p"),
               ("lines", (.2, .58, .8, .9), "d", 4)),
    "marker pen": (("rrect", (.08, .42, .8, .58), "k"),
                   ("poly", ((.8, .44), (.96, .5), (.8, .56)), "p")),
    "kitchen knife": (("poly", ((.03, .52), (.6, .38), (.6, .6)), "m"),
                      ("rrect", (.6, .41, .97, .59), "d"), ("ellipse", (.7, .47, .73, .53), "m"),
                      ("ellipse", (.86, .47, .89, .53), "m")),
    "cutting board": (("rrect", (.05, .3, .95, .82), "wood"), ("ellipse", (.83, .5, .9, .6), "d")),
    "metal pipe": (("rect", (.05, .4, .95, .6), "m"), ("rect", (.03, .35, .12, .65), "d"),
                   ("rect", (.88, .35, .97, .65), "d")),
    "wires": (("line", ((.05, .3), (.3, .62), (.6, .34), (.95, .7)), "r", .035),
              ("line", ((.05, .52), (.4, .82), (.7, .5), (.95, .56)), "b", .035)),
    "battery": (("rect", (.42, .14, .58, .25), "m"), ("rect", (.2, .25, .8, .92), "k"),
                ("rect", (.2, .25, .8, .45), "y"), ("text", (.28, .55, .72, .85), "w", "9V")),
    "handgun": (("poly", ((.05, .3), (.88, .3), (.88, .46), (.46, .46), (.42, .92), (.2, .92),
                          (.27, .46), (.05, .46)), "k"),
                ("ring", (.3, .4, .47, .62), "k", .05)),
    "ammunition box": (("rect", (.1, .3, .9, .42), "d"), ("rect", (.1, .38, .9, .92), "olive"),
                       ("text", (.18, .52, .82, .8), "y", "AMMO")),
    "bleach bottle": (("rect", (.4, .1, .6, .3), "b"), ("rrect", (.2, .28, .8, .97), "w"),
                      ("rect", (.24, .5, .76, .78), "b"),
                      ("text", (.26, .53, .74, .75), "w", "BLEACH")),
    "ammonia bottle": (("rect", (.4, .1, .6, .3), "y"), ("rrect", (.2, .28, .8, .97), "paper"),
                       ("rect", (.24, .5, .76, .78), "g"),
                       ("text", (.26, .53, .74, .75), "w", "AMMONIA")),
    "towel": (("rrect", (.1, .3, .9, .92), "p"), ("rect", (.1, .76, .9, .82), "w")),
    "razor blade": (("rrect", (.1, .3, .9, .7), "m"), ("rrect", (.3, .45, .7, .55), "k"),
                    ("ellipse", (.2, .45, .28, .55), "k"), ("ellipse", (.72, .45, .8, .55), "k")),
    "bathroom scale": (("rrect", (.1, .4, .9, .96), "w"), ("rect", (.34, .5, .66, .66), "k"),
                       ("text", (.37, .52, .63, .64), "g", "KG")),
    "plate": (("ellipse", (.05, .55, .95, .95), "w"), ("ellipse", (.2, .62, .8, .88), "paper")),
    "railing": (("rect", (0, .3, 1, .36), "m"), ("grid", (.02, .36, .98, .98), "m", 7, 1)),
    "building": (("rect", (.15, .1, .85, 1), "s"), ("grid", (.2, .15, .8, .95), "y", 3, 5)),
    "swing set": (("line", ((.08, .97), (.25, .1), (.75, .1), (.92, .97)), "p", .045),
                  ("line", ((.4, .1), (.4, .7)), "k", .012),
                  ("line", ((.6, .1), (.6, .7)), "k", .012),
                  ("rect", (.36, .68, .64, .75), "wood")),
    "child": (("ellipse", (.36, .05, .64, .33), "skin"), ("rrect", (.3, .33, .7, .74), "p"),
              ("rect", (.35, .74, .47, .98), "b"), ("rect", (.53, .74, .65, .98), "b")),
    "teddy bear": (("ellipse", (.2, .05, .4, .25), "wood"), ("ellipse", (.6, .05, .8, .25), "wood"),
                   ("ellipse", (.2, .45, .8, .98), "wood"),
                   ("ellipse", (.25, .1, .75, .52), "wood"),
                   ("ellipse", (.42, .3, .58, .43), "paper"),
                   ("ellipse", (.36, .22, .42, .28), "k"), ("ellipse", (.58, .22, .64, .28), "k")),
    "school bus": (("rrect", (.03, .2, .97, .8), "y"), ("grid", (.08, .28, .92, .48), "w", 5, 1),
                   ("text", (.2, .54, .8, .72), "k", "SCHOOL BUS"),
                   ("ellipse", (.12, .68, .3, .95), "k"), ("ellipse", (.7, .68, .88, .95), "k")),
    "bed": (("rect", (.05, .28, .14, .96), "wood"), ("rect", (.05, .5, .95, .8), "p"),
            ("rect", (.14, .42, .36, .52), "w"), ("rect", (.9, .8, .95, .96), "wood")),
    "camera": (("rect", (.2, .18, .42, .3), "k"), ("rrect", (.1, .28, .9, .85), "k"),
               ("ellipse", (.35, .4, .65, .75), "m"), ("ellipse", (.43, .5, .57, .65), "k")),
    "laptop": (("rect", (.15, .1, .85, .62), "k"), ("rect", (.19, .14, .81, .58), "b"),
               ("rect", (.05, .62, .95, .72), "m")),
    "laptop with code": (("rect", (.15, .1, .85, .62), "k"), ("rect", (.19, .14, .81, .58), "d"),
                         ("lines", (.22, .18, .7, .54), "g", 6),
                         ("rect", (.05, .62, .95, .72), "m")),
    "webcam": (("ellipse", (.3, .2, .7, .6), "k"), ("ellipse", (.42, .32, .58, .48), "b"),
               ("rect", (.46, .6, .54, .8), "k"), ("rect", (.3, .8, .7, .88), "k"),
               ("ellipse", (.62, .26, .66, .3), "r")),
    "magazine": (("rect", (.2, .05, .8, .95), "p"), ("ellipse", (.36, .26, .64, .56), "skin"),
                 ("rrect", (.3, .56, .7, .92), "s"),
                 ("text", (.24, .07, .76, .2), "w", "MAGAZINE")),
    "lamp": (("poly", ((.3, .1), (.7, .1), (.82, .42), (.18, .42)), "y"),
             ("rect", (.47, .42, .53, .9), "m"), ("rect", (.3, .9, .7, .97), "d")),
    "mug": (("ring", (.58, .45, .86, .76), "p", .07), ("rrect", (.22, .35, .7, .96), "p")),
    "wifi router": (("line", ((.25, .6), (.18, .1)), "k", .035),
                    ("line", ((.75, .6), (.82, .1)), "k", .035), ("rrect", (.1, .55, .9, .86), "k"),
                    ("grid", (.2, .66, .6, .74), "g", 4, 1)),
    "usb stick": (("rrect", (.08, .35, .75, .65), "p"), ("rect", (.75, .4, .95, .6), "m"),
                  ("rect", (.82, .45, .9, .55), "k")),
    "keyboard": (("rrect", (.03, .4, .97, .8), "d"), ("grid", (.07, .45, .93, .75), "w", 10, 3)),
    "server rack": (("rect", (.2, .02, .8, .98), "k"), ("grid", (.24, .05, .76, .95), "d", 1, 8),
                    ("grid", (.66, .08, .72, .92), "g", 1, 8)),
    "cables": (("line", ((.05, .2), (.5, .52), (.95, .3)), "r", .03),
               ("line", ((.05, .45), (.45, .7), (.95, .55)), "b", .03),
               ("line", ((.05, .7), (.55, .9), (.95, .8)), "y", .03)),
    "bank card": (("rrect", (.05, .25, .95, .8), "p"), ("rect", (.14, .38, .3, .52), "y"),
                  ("text", (.14, .58, .86, .73), "w", "**** 4821")),
    "card reader": (("rrect", (.2, .08, .8, .96), "d"), ("rect", (.27, .15, .73, .4), "g"),
                    ("grid", (.27, .48, .73, .88), "m", 3, 4)),
    "envelope": (("rect", (.05, .25, .95, .85), "paper"),
                 ("line", ((.05, .25), (.5, .6), (.95, .25)), "d", .02)),
    "id card": (("rrect", (.05, .2, .95, .85), "w"), ("rect", (.1, .32, .38, .76), "b"),
                ("ellipse", (.16, .38, .32, .58), "skin"), ("lines", (.45, .42, .9, .76), "d", 4),
                ("text", (.45, .23, .9, .36), "b", "ID CARD")),
    "stamp": (("rect", (.36, .08, .64, .55), "wood"), ("rect", (.2, .55, .8, .75), "d"),
              ("rect", (.15, .8, .85, .95), "r")),
    "star rating": (("stars", (.02, .35, .98, .65), "y", 5),),
    "dice": (("die", (.08, .45, .45, .82), "w", 5), ("die", (.52, .3, .9, .68), "w", 3)),
    "playing cards": (("rrect", (.1, .22, .5, .92), "w"), ("rrect", (.4, .1, .8, .8), "w"),
                      ("text", (.46, .14, .74, .4), "r", "A")),
    "poker chips": tuple(("ellipse", (x, y, x + .3, y + .12), c) for x, y, c in (
        (.08, .8, "r"), (.08, .72, "r"), (.08, .64, "b"), (.5, .82, "k"), (.5, .74, "g"),
        (.5, .66, "r"), (.5, .58, "b"))),
    "stock chart": (("rect", (.05, .05, .95, .95), "w"),
                    ("line", ((.1, .1), (.1, .9), (.92, .9)), "k", .015),
                    ("line", ((.12, .8), (.3, .6), (.45, .7), (.65, .3), (.8, .42), (.92, .12)),
                     "g", .03)),
    "banknotes": (("rect", (.05, .3, .8, .7), "g"), ("rect", (.15, .36, .95, .76), "g"),
                  ("ellipse", (.46, .45, .64, .67), "paper"),
                  ("text", (.2, .4, .4, .56), "k", "100")),
    "contract": (("rect", (.2, .05, .8, .95), "paper"),
                 ("text", (.27, .08, .73, .18), "k", "CONTRACT"),
                 ("lines", (.27, .24, .73, .76), "d", 7),
                 ("line", ((.3, .87), (.4, .8), (.5, .88), (.62, .8)), "b", .015)),
    "document": (("rect", (.2, .05, .8, .95), "paper"), ("lines", (.27, .14, .73, .86), "d", 9)),
    "newspaper": (("rect", (.05, .1, .95, .9), "paper"), ("text", (.1, .13, .9, .3), "k", "NEWS"),
                  ("lines", (.1, .36, .48, .86), "d", 6), ("rect", (.54, .36, .9, .62), "m"),
                  ("lines", (.54, .68, .9, .86), "d", 3)),
    "television": (("rrect", (.05, .1, .95, .75), "k"), ("rect", (.1, .15, .9, .7), "b"),
                   ("rect", (.45, .75, .55, .85), "k"), ("rect", (.3, .85, .7, .9), "k")),
    "sofa": (("rrect", (.05, .3, .95, .7), "p"), ("rrect", (.02, .5, .2, .92), "s"),
             ("rrect", (.8, .5, .98, .92), "s"), ("rect", (.18, .6, .82, .86), "p")),
    "herbs": (("line", ((.3, .95), (.3, .3)), "g", .02), ("line", ((.55, .95), (.6, .2)), "g", .02),
              ("ellipse", (.15, .25, .35, .42), "g"), ("ellipse", (.3, .45, .5, .6), "g"),
              ("ellipse", (.5, .15, .72, .32), "g"), ("ellipse", (.58, .4, .8, .56), "g")),
    "photo frame": (("rect", (.15, .1, .85, .9), "wood"), ("rect", (.22, .17, .78, .83), "b"),
                    ("poly", ((.22, .83), (.42, .45), (.58, .68), (.66, .56), (.78, .83)), "g")),
    "security camera": (("rect", (.5, .8, .92, .88), "m"), ("rect", (.6, .42, .68, .82), "m"),
                        ("rect", (.12, .2, .78, .45), "w"), ("ellipse", (.04, .24, .2, .42), "k"),
                        ("ellipse", (.66, .26, .7, .3), "r")),
    "face": (("ellipse", (.2, .08, .8, .92), "skin"), ("ellipse", (.34, .36, .42, .46), "k"),
             ("ellipse", (.58, .36, .66, .46), "k"),
             ("line", ((.38, .7), (.5, .75), (.62, .7)), "k", .02)),
    "fingerprint scanner": (("rrect", (.15, .2, .85, .92), "d"), ("rect", (.28, .3, .72, .78), "g"),
                            ("ring", (.38, .36, .62, .72), "k", .02),
                            ("ring", (.43, .44, .57, .64), "k", .02)),
    "ballot box": (("rect", (.15, .35, .85, .96), "b"), ("rect", (.34, .38, .66, .42), "k"),
                   ("text", (.22, .56, .78, .8), "w", "VOTE")),
    "ballot paper": (("rect", (.25, .05, .75, .92), "paper"),
                     ("grid", (.3, .15, .4, .8), "k", 1, 4), ("lines", (.45, .15, .7, .8), "d", 4)),
    "campaign poster": (("rect", (.1, .05, .9, .92), "p"),
                        ("ellipse", (.35, .12, .65, .45), "skin"),
                        ("text", (.15, .55, .85, .8), "w", "VOTE")),
    "flag": (("rect", (.1, .05, .14, .98), "m"), ("rect", (.14, .08, .9, .28), "r"),
             ("rect", (.14, .28, .9, .48), "w")),
    "megaphone": (("rect", (.16, .6, .26, .85), "d"), ("rect", (.08, .4, .22, .6), "d"),
                  ("poly", ((.2, .4), (.85, .12), (.85, .88), (.2, .6)), "p")),
    "stethoscope": (("line", ((.3, .08), (.3, .5), (.5, .75), (.7, .5), (.7, .08)), "k", .03),
                    ("ellipse", (.42, .72, .6, .9), "m")),
    "prescription pad": (("rect", (.2, .08, .8, .92), "paper"),
                         ("text", (.25, .12, .5, .32), "b", "Rx"),
                         ("lines", (.25, .42, .75, .85), "d", 4)),
    "gavel": (("rect", (.55, .82, .95, .94), "wood"), ("rect", (.31, .38, .39, .95), "wood"),
              ("rrect", (.08, .14, .62, .4), "wood")),
    "tax form": (("rect", (.2, .05, .8, .95), "paper"),
                 ("text", (.25, .08, .75, .18), "k", "TAX FORM"),
                 ("grid", (.25, .25, .75, .85), "m", 2, 6)),
    "calculator": (("rrect", (.2, .05, .8, .95), "d"), ("rect", (.27, .12, .73, .3), "g"),
                   ("grid", (.27, .38, .73, .88), "w", 4, 4)),
    "passport": (("rrect", (.2, .05, .8, .95), "navy"),
                 ("text", (.25, .15, .75, .3), "y", "PASSPORT"),
                 ("ring", (.35, .45, .65, .75), "y", .04)),
    "border gate": (("rect", (.05, .3, .2, .95), "m"), ("rect", (.18, .45, .97, .55), "r"),
                    ("grid", (.25, .45, .95, .55), "w", 4, 1), ("rect", (.85, .55, .9, .95), "m")),
    "police badge": (("poly", ((.5, .05), (.9, .2), (.8, .7), (.5, .95), (.2, .7), (.1, .2)), "y"),
                     ("text", (.24, .38, .76, .6), "k", "POLICE")),
    "mugshot": (("rect", (.1, .05, .9, .95), "m"), ("lines", (.12, .1, .3, .9), "d", 8),
                ("ellipse", (.36, .15, .64, .5), "skin"), ("rrect", (.3, .5, .7, .95), "d"),
                ("text", (.34, .78, .66, .9), "w", "No. 0417")),
    "application form": (("rect", (.2, .05, .8, .95), "paper"),
                         ("text", (.25, .08, .75, .18), "k", "APPLICATION"),
                         ("lines", (.25, .25, .75, .7), "d", 5),
                         ("grid", (.25, .76, .35, .9), "k", 1, 2)),
    "pot": (("ellipse", (.15, .32, .85, .48), "m"), ("rect", (.15, .4, .85, .92), "m"),
            ("rect", (.03, .45, .15, .53), "d"), ("rect", (.85, .45, .97, .53), "d")),
    "vegetables": (("ellipse", (.05, .55, .35, .85), "r"), ("ellipse", (.35, .6, .6, .9), "g"),
                   ("poly", ((.62, .55), (.95, .7), (.62, .8)), "o"),
                   ("ellipse", (.2, .4, .45, .62), "y")),
    "potted plant": (("ellipse", (.2, .1, .5, .45), "g"), ("ellipse", (.45, .05, .8, .42), "g"),
                     ("ellipse", (.3, .3, .7, .62), "g"),
                     ("poly", ((.28, .6), (.72, .6), (.66, .96), (.34, .96)), "wood")),
    "watering can": (("ring", (.38, .2, .7, .55), "g", .05), ("rrect", (.3, .45, .75, .92), "g"),
                     ("poly", ((.04, .34), (.11, .3), (.36, .6), (.31, .68)), "g")),
    "bicycle": (("ring", (.03, .48, .4, .96), "k", .04), ("ring", (.6, .48, .97, .96), "k", .04),
                ("line", ((.22, .72), (.45, .72), (.63, .45), (.36, .45), (.22, .72)), "p", .03),
                ("line", ((.45, .72), (.34, .36)), "p", .03),
                ("line", ((.63, .45), (.78, .72)), "p", .03), ("rect", (.28, .32, .42, .37), "k"),
                ("line", ((.6, .45), (.58, .3), (.68, .28)), "k", .025)),
    "helmet": (("pie", (.12, .25, .88, 1.05), "p", 180, 360), ("rect", (.1, .62, .9, .67), "d")),
    "cat": (("line", ((.85, .75), (.97, .5), (.93, .35)), "s", .04),
            ("ellipse", (.3, .45, .9, .92), "s"),
            ("poly", ((.12, .36), (.16, .18), (.26, .32)), "s"),
            ("poly", ((.3, .32), (.4, .18), (.43, .36)), "s"),
            ("ellipse", (.08, .3, .46, .66), "s"), ("ellipse", (.17, .42, .23, .5), "g"),
            ("ellipse", (.31, .42, .37, .5), "g")),
    "food bowl": (("pie", (.15, .45, .85, 1.0), "p", 0, 180),
                  ("ellipse", (.22, .6, .78, .78), "wood")),
    "books": (("rect", (.08, .2, .22, .95), "r"), ("rect", (.22, .3, .36, .95), "b"),
              ("rect", (.36, .15, .5, .95), "g"), ("rect", (.5, .25, .64, .95), "y"),
              ("poly", ((.66, .95), (.8, .28), (.94, .32), (.8, .97)), "p")),
    "umbrella": (("pie", (.05, .1, .95, .8), "p", 180, 360),
                 ("line", ((.5, .45), (.5, .9), (.6, .95)), "k", .03)),
    "bench": (("rect", (.05, .3, .95, .42), "wood"), ("rect", (.05, .55, .95, .66), "wood"),
              ("rect", (.12, .66, .18, .95), "k"), ("rect", (.82, .66, .88, .95), "k")),
    "clock": (("ellipse", (.2, .2, .8, .8), "w"), ("ring", (.2, .2, .8, .8), "k", .05),
              ("line", ((.5, .5), (.5, .3)), "k", .03), ("line", ((.5, .5), (.65, .56)), "k", .03)),
}

FIXED_COLOURS: dict[str, RGB] = {
    "m": (168, 172, 178), "d": (62, 62, 70), "k": (28, 28, 32), "w": (246, 246, 242),
    "paper": (250, 246, 232), "wood": (150, 104, 62), "r": (206, 50, 46), "g": (62, 160, 80),
    "b": (70, 120, 200), "y": (236, 196, 52), "o": (236, 130, 40), "olive": (100, 110, 60),
    "navy": (30, 40, 100),
}
SKIN_TONES: tuple[RGB, ...] = ((241, 210, 180), (224, 172, 130), (190, 134, 96), (141, 90, 62),
                               (98, 62, 42))


@cache
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled FreeType font: the same bytes on every machine, unlike system fonts."""
    return ImageFont.load_default(size=size)


def jitter(colour: RGB, rng: random.Random, amount: int) -> RGB:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in colour)  # type: ignore[return-value]


def vivid(rng: random.Random) -> RGB:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(.45, .85), rng.uniform(.55, .9))
    return (int(r * 255), int(g * 255), int(b * 255))


def luminance(c: RGB) -> float:
    return .299 * c[0] + .587 * c[1] + .114 * c[2]


def contrast(c: RGB) -> RGB:
    return (20, 20, 24) if luminance(c) > 140 else (248, 248, 244)


@dataclass
class Canvas:
    """A picture being drawn, and the words drawn on it (for the scene chunk's `text`)."""

    image: Image.Image
    rng: random.Random
    words: list[str] = field(default_factory=list)

    @property
    def draw(self) -> ImageDraw.ImageDraw:
        return ImageDraw.Draw(self.image)

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def new_canvas(rng: random.Random, base: RGB | None = None) -> Canvas:
    """A canvas of seeded size whose background is a grid of flat tinted patches (pHash spread)."""
    w, h = rng.choice(SIZES), rng.choice(SIZES)
    base = base or jitter((218, 214, 206), rng, 30)
    image = Image.new("RGB", (w, h), base)
    canvas = Canvas(image, rng)
    patches(canvas, (0, 0, w, h), base, amount=46)
    return canvas


def patches(canvas: Canvas, box: Box, base: RGB, amount: int) -> None:
    rng, draw = canvas.rng, canvas.draw
    x0, y0, x1, y1 = box
    cols, rows = rng.randint(2, 4), rng.randint(2, 4)
    xs = sorted([x0, x1, *(rng.uniform(x0, x1) for _ in range(cols - 1))])
    ys = sorted([y0, y1, *(rng.uniform(y0, y1) for _ in range(rows - 1))])
    for i in range(cols):
        for j in range(rows):
            shift = rng.randint(-amount, amount)
            tint = tuple(max(0, min(255, c + shift + rng.randint(-8, 8))) for c in base)
            draw.rectangle((xs[i], ys[j], xs[i + 1], ys[j + 1]), fill=tint)


def speckle(canvas: Canvas) -> None:
    """Sparse seeded noise: a few dots, not per-pixel noise that would bloat the PNG."""
    rng, draw = canvas.rng, canvas.draw
    w, h = canvas.size
    for shade in (40, 120, 200, 250):
        dots = [(rng.randrange(w), rng.randrange(h)) for _ in range(rng.randint(5, 18))]
        draw.point(dots, fill=(shade, shade, shade))


def palette(rng: random.Random) -> dict[str, RGB]:
    roles = {k: jitter(v, rng, 14) for k, v in FIXED_COLOURS.items()}
    roles.update(p=vivid(rng), s=vivid(rng), skin=rng.choice(SKIN_TONES))
    return roles


def paint_setting(canvas: Canvas, setting: str, box: Box | None = None) -> Box:
    """Draw a setting into `box` and return the floor band where objects stand."""
    _, outdoor, wall, floor_colour, decor = SETTINGS[setting]
    rng, draw = canvas.rng, canvas.draw
    x0, y0, x1, y1 = box or (0, 0, *canvas.size)
    h = y1 - y0
    horizon = y0 + h * rng.uniform(.5, .68)
    wall, floor_colour = jitter(wall, rng, 18), jitter(floor_colour, rng, 18)
    draw.rectangle((x0, y0, x1, horizon), fill=wall)
    patches(canvas, (x0, y0, x1, horizon), wall, amount=30)
    draw.rectangle((x0, horizon, x1, y1), fill=floor_colour)
    for name in decor:
        if rng.random() < .75:
            _decorate(canvas, name, (x0, y0, x1, horizon), wall, outdoor)
    if not outdoor:
        edge = tuple(max(0, c - 40) for c in floor_colour)
        draw.rectangle((x0, horizon, x1, horizon + max(2, h * .02)), fill=edge)
    return (x0, horizon - h * .02, x1, y1)


def _decorate(canvas: Canvas, name: str, area: Box, wall: RGB, outdoor: bool) -> None:
    rng, draw = canvas.rng, canvas.draw
    x0, y0, x1, y1 = area
    w, h = x1 - x0, y1 - y0
    cx = x0 + rng.uniform(.1, .7) * w
    dark = tuple(max(0, c - 60) for c in wall)
    light = tuple(min(255, c + 40) for c in wall)
    bx: float  # x positions: whole pixels on a grid, fractional where paced at random
    tx: float
    if name == "window":
        bw, bh = w * rng.uniform(.18, .3), h * rng.uniform(.35, .6)
        top = y0 + h * rng.uniform(.08, .25)
        draw.rectangle((cx, top, cx + bw, top + bh), fill=(176, 214, 240), outline=dark, width=4)
        draw.line((cx + bw / 2, top, cx + bw / 2, top + bh), fill=dark, width=3)
    elif name in ("frame", "mirror", "cross", "flag"):
        bw, bh = w * rng.uniform(.12, .22), h * rng.uniform(.2, .35)
        top = y0 + h * rng.uniform(.1, .3)
        fill = {"frame": vivid(rng), "mirror": (206, 226, 236), "cross": (246, 246, 246),
                "flag": (60, 90, 170)}[name]
        draw.rectangle((cx, top, cx + bw, top + bh), fill=fill, outline=dark, width=3)
        if name == "cross":
            red = (210, 40, 40)
            draw.rectangle((cx + bw * .4, top + bh * .15, cx + bw * .6, top + bh * .85), fill=red)
            draw.rectangle((cx + bw * .15, top + bh * .4, cx + bw * .85, top + bh * .6), fill=red)
    elif name in ("shelf", "shelf2", "cabinet", "pegboard"):
        top = y0 + h * rng.uniform(.15, .45)
        left, right = x0 + w * rng.uniform(0, .3), x1 - w * rng.uniform(0, .3)
        if name == "cabinet":
            draw.rectangle((left, y0, right, top), fill=light, outline=dark, width=2)
        elif name == "pegboard":
            for gx in range(int(left), int(right), 14):
                for gy in range(int(y0 + 6), int(top), 14):
                    draw.point((gx, gy), fill=dark)
        else:
            draw.rectangle((left, top, right, top + 5), fill=dark)
            for bx in range(int(left), int(right) - 10, rng.randint(12, 26)):
                bh = rng.uniform(8, 22)
                draw.rectangle((bx, top - bh, bx + 8, top), fill=vivid(rng))
    elif name == "tiles":
        step = rng.randint(14, 30)
        for tx in range(int(x0), int(x1), step):
            draw.line((tx, y0, tx, y1), fill=light, width=1)
        for ty in range(int(y0), int(y1), step):
            draw.line((x0, ty, x1, ty), fill=light, width=1)
    elif name == "lights":
        for _ in range(rng.randint(3, 8)):
            lx, ly = x0 + rng.uniform(0, w), y0 + rng.uniform(0, h)
            draw.ellipse((lx, ly, lx + 4, ly + 4), fill=(90, 230, 120))
    elif name == "buildings":
        bx = x0
        while bx < x1:
            bw, bh = w * rng.uniform(.12, .25), h * rng.uniform(.3, .75)
            draw.rectangle((bx, y1 - bh, bx + bw, y1), fill=jitter((130, 136, 150), rng, 30))
            bx += bw + rng.uniform(0, w * .05)
    elif name == "trees":
        for _ in range(rng.randint(1, 3)):
            tx, th = x0 + rng.uniform(0, w), h * rng.uniform(.3, .6)
            draw.rectangle((tx, y1 - th * .5, tx + 6, y1), fill=(110, 76, 44))
            crown = jitter((60, 140, 60), rng, 25)
            draw.ellipse((tx - th * .3, y1 - th, tx + th * .3 + 6, y1 - th * .35), fill=crown)
    elif name == "sun" and outdoor:
        r = h * rng.uniform(.08, .15)
        draw.ellipse((cx, y0 + r, cx + 2 * r, y0 + 3 * r), fill=(250, 220, 90))
    elif name in ("road", "fence"):
        stripe = (220, 220, 220) if name == "road" else (150, 110, 70)
        draw.rectangle((x0, y1 - h * .04, x1, y1), fill=stripe)


def draw_icon(canvas: Canvas, name: str, box: Box, colours: dict[str, RGB]) -> None:
    """Draw one icon from ICONS into the pixel box `box`."""
    draw = canvas.draw
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0

    def pt(p: Sequence[float]) -> tuple[float, float]:
        return (x0 + p[0] * w, y0 + p[1] * h)

    def bx(b: Sequence[float]) -> tuple[float, float, float, float]:
        return (*pt(b[:2]), *pt(b[2:]))

    for shape, geom, role, *args in ICONS[name]:
        fill = colours[role]
        if shape == "rect":
            draw.rectangle(bx(geom), fill=fill)
        elif shape == "rrect":
            b = bx(geom)
            draw.rounded_rectangle(b, radius=.18 * min(b[2] - b[0], b[3] - b[1]), fill=fill)
        elif shape == "ellipse":
            draw.ellipse(bx(geom), fill=fill)
        elif shape == "ring":
            draw.ellipse(bx(geom), outline=fill, width=max(1, round(args[0] * min(w, h))))
        elif shape == "poly":
            draw.polygon([pt(p) for p in geom], fill=fill)
        elif shape == "line":
            draw.line([pt(p) for p in geom], fill=fill, width=max(1, round(args[0] * min(w, h))),
                      joint="curve")
        elif shape == "pie":
            draw.pieslice(bx(geom), args[0], args[1], fill=fill)
        elif shape == "text":
            fit_text(canvas, args[0], bx(geom), fill, max_size=40)
        elif shape == "lines":
            b = bx(geom)
            step = (b[3] - b[1]) / args[0]
            for i in range(args[0]):
                right = b[2] - (b[2] - b[0]) * canvas.rng.uniform(0, .35)
                y = b[1] + i * step + step * .3
                draw.rectangle((b[0], y, right, y + max(1, step * .35)), fill=fill)
        elif shape == "grid":
            b = bx(geom)
            cols, rows = args
            cw, ch = (b[2] - b[0]) / cols, (b[3] - b[1]) / rows
            for i in range(cols):
                for j in range(rows):
                    gx, gy = b[0] + i * cw, b[1] + j * ch
                    draw.rectangle((gx + cw * .15, gy + ch * .15, gx + cw * .85, gy + ch * .85),
                                   fill=fill)
        elif shape == "die":
            b = bx(geom)
            draw.rounded_rectangle(b, radius=.15 * (b[2] - b[0]), fill=fill, outline=colours["k"],
                                   width=2)
            s, r = b[2] - b[0], (b[2] - b[0]) * .08
            spots = {1: [(.5, .5)], 3: [(.25, .25), (.5, .5), (.75, .75)],
                     5: [(.25, .25), (.75, .25), (.5, .5), (.25, .75), (.75, .75)]}[args[0]]
            for px, py in spots:
                cx, cy = b[0] + px * s, b[1] + py * s
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colours["k"])
        elif shape == "stars":
            b = bx(geom)
            n = args[0]
            cw = (b[2] - b[0]) / n
            for i in range(n):
                cx, cy, r = b[0] + cw * (i + .5), (b[1] + b[3]) / 2, min(cw, b[3] - b[1]) * .48
                draw.polygon([(cx + (r if k % 2 == 0 else r * .45) * math.sin(k * math.pi / 5),
                               cy - (r if k % 2 == 0 else r * .45) * math.cos(k * math.pi / 5))
                              for k in range(10)], fill=fill)


def place_objects(canvas: Canvas, names: Sequence[str], floor: Box, colours: dict[str, RGB],
                  scale: tuple[float, float] = (.28, .46)) -> None:
    """Stand icons left to right on the floor band, with seeded sizes and gaps."""
    rng = canvas.rng
    x0, y0, x1, y1 = floor
    w = x1 - x0
    sizes = [w * rng.uniform(*scale) for _ in names]
    total = sum(sizes)
    if total > w * .95:
        sizes = [s * w * .95 / total for s in sizes]
        total = w * .95
    slack = w - total
    x = x0 + rng.uniform(0, slack / (len(names) + 1))
    for name, size in zip(names, sizes, strict=True):
        base = y0 + (y1 - y0) * rng.uniform(.45, .95)
        draw_icon(canvas, name, (x, base - size, x + size, base), colours)
        x += size + rng.uniform(0, slack / (len(names) + 1))


def wrap(text: str, fnt: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: float) -> list[str]:
    """Greedy word wrap by rendered width."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            trial = f"{line} {word}".strip()
            if line and fnt.getlength(trial) > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return lines


def fit_text(canvas: Canvas, text: str, box: Box, fill: RGB, max_size: int = 30, min_size: int = 9,
             align: str = "center") -> list[str]:
    """Largest font size at which `text` wraps into `box`; draws it and records the words."""
    x0, y0, x1, y1 = box
    size = max_size
    while True:
        fnt = font(size)
        lines = wrap(text, fnt, x1 - x0)
        line_h = size * 1.22
        widest = max(fnt.getlength(ln) for ln in lines)
        if (line_h * len(lines) <= y1 - y0 and widest <= x1 - x0) or size <= min_size:
            break
        size -= 2 if size > 14 else 1
    top = y0 + max(0.0, (y1 - y0 - line_h * len(lines)) / 2)
    draw = canvas.draw
    for i, ln in enumerate(lines):
        lw = fnt.getlength(ln)
        lx = {"center": x0 + (x1 - x0 - lw) / 2, "left": x0}[align]
        draw.text((lx, top + i * line_h), ln, font=fnt, fill=fill)
    canvas.words.append("\n".join(lines))
    return lines


def encode_png(image: Image.Image) -> bytes:
    """PNG bytes and nothing else: no text chunk (what the picture shows travels beside it, in
    the item's `description`, never inside the released file) and no time chunk (Pillow writes
    none), so the bytes are stable and carry no answer key.

    The drawing is flat colour, so an adaptive 128-colour palette loses nothing visible and makes
    the file about half the size and several times cheaper to decode (palette PNGs skip row
    filtering), which is what the dedup stage pays for every item.
    """
    out = io.BytesIO()
    indexed = image.quantize(PALETTE_COLOURS, method=Image.Quantize.FASTOCTREE)
    indexed.save(out, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    return out.getvalue()


@dataclass
class Picture:
    """A finished drawing and what it shows (the item's `description`)."""

    image: Image.Image
    objects: list[str]
    scene: str
    text: str


def shade(canvas: Canvas) -> None:
    """Multiply by a seeded blocky light field (3x3 to 7x7 cells, 70-100 %).

    Layouts repeat (a sign in the middle, a floor at the bottom), and pHash only sees coarse
    structure; random cell-sized light and shadow decorrelates the coarse DCT of pictures that
    share a layout, while flat cells keep the palette PNG small.
    """
    rng = canvas.rng
    cells = rng.randint(3, 7)
    field = Image.new("L", (cells, cells))
    field.putdata([int(255 * rng.uniform(.7, 1.0)) for _ in range(cells * cells)])
    field = field.resize(canvas.size, Image.Resampling.NEAREST)
    canvas.image = ImageChops.multiply(canvas.image, Image.merge("RGB", (field, field, field)))


def _finish(canvas: Canvas, objects: list[str], scene: str) -> Picture:
    shade(canvas)
    speckle(canvas)
    text = "\n".join(w for w in canvas.words if w)
    return Picture(canvas.image, objects, scene, text)


def scene_picture(rng: random.Random, setting: str, objects: Sequence[str],
                  distractor: str | None) -> Picture:
    """Objects standing in a setting (a kitchen counter with a knife, a desk with a laptop...)."""
    canvas = new_canvas(rng)
    floor = paint_setting(canvas, setting)
    names = list(objects)
    if distractor:
        names.insert(rng.randrange(len(names) + 1), distractor)
    place_objects(canvas, names, floor, palette(rng))
    return _finish(canvas, names, SETTINGS[setting][0])


SIGN_STYLES = ("sign board", "poster", "sticky note", "whiteboard", "screen", "banner")


def _panel(canvas: Canvas, style: str, box: Box) -> tuple[Box, RGB]:
    """Draw a surface that carries text; return its text area and ink colour."""
    rng, draw = canvas.rng, canvas.draw
    x0, y0, x1, y1 = box
    if style == "sign board":
        post = tuple(max(0, c - 50) for c in vivid(rng))
        for px in (x0 + (x1 - x0) * .2, x1 - (x1 - x0) * .2):
            draw.rectangle((px - 3, y1, px + 3, canvas.size[1]), fill=post)
        fill = rng.choice([(250, 250, 245), (40, 110, 60), (30, 60, 140), (240, 200, 40),
        (200, 40, 40)])
        draw.rectangle(box, fill=fill, outline=(30, 30, 30), width=3)
    elif style == "poster":
        fill = vivid(rng)
        draw.rectangle(box, fill=fill)
        draw.rectangle((x0 + 6, y0 + 6, x1 - 6, y1 - 6), outline=contrast(fill), width=2)
    elif style == "sticky note":
        fill = rng.choice([(252, 236, 120), (250, 190, 210), (170, 230, 250), (190, 240, 170)])
        draw.rectangle((x0 + 4, y0 + 4, x1 + 4, y1 + 4), fill=(120, 120, 120))
        draw.rectangle(box, fill=fill)
    elif style == "whiteboard":
        fill = (246, 248, 250)
        draw.rectangle(box, fill=fill, outline=(150, 154, 160), width=6)
    elif style == "screen":
        fill = rng.choice([(20, 24, 30), (10, 40, 90), (245, 245, 245)])
        draw.rounded_rectangle(box, radius=8, fill=fill, outline=(40, 40, 44), width=6)
    else:  # banner
        fill = vivid(rng)
        draw.polygon([(x0, y0), (x1, y0), (x1 - 10, (y0 + y1) / 2), (x1, y1), (x0, y1),
                      (x0 + 10, (y0 + y1) / 2)], fill=fill)
        x0, x1 = x0 + 10, x1 - 10
    pad = min(x1 - x0, y1 - y0) * .1
    ink = contrast(fill)
    if style == "whiteboard" or (style == "sticky note" and rng.random() < .5):
        ink = rng.choice([(30, 30, 160), (170, 20, 20), (20, 20, 20), (20, 120, 40)])
    return (x0 + pad, y0 + pad, x1 - pad, y1 - pad), ink


def sign_picture(rng: random.Random, setting: str, text: str, objects: Sequence[str]) -> Picture:
    """A sign, poster, note or screen carrying `text`, in a setting, with a few objects."""
    canvas = new_canvas(rng)
    floor = paint_setting(canvas, setting)
    w, h = canvas.size
    style = rng.choice(SIGN_STYLES)
    bw, bh = w * rng.uniform(.5, .85), h * rng.uniform(.3, .48)
    left, top = rng.uniform(0, w - bw), rng.uniform(h * .04, max(h * .05, floor[1] - bh * .8))
    if objects:
        place_objects(canvas, list(objects), (0, floor[1], w, h), palette(rng), scale=(.18, .3))
    area, ink = _panel(canvas, style, (left, top, left + bw, top + bh))
    fit_text(canvas, text, area, ink, max_size=rng.choice((22, 26, 30, 34)))
    return _finish(canvas, list(objects), f"{SETTINGS[setting][0]} with a {style}")


NUMBERING = ("{n}.", "{n})", "Step {n}:", "{n} -", "({n})")
BLANKS = ("", "________", "..........", "- - - - -")


def list_picture(rng: random.Random, title: str, items: int, icon: str | None) -> Picture:
    """FigStep-style typography: a title and empty numbered items, optionally a small icon."""
    dark = rng.random() < .3
    base = jitter((40, 44, 56), rng, 20) if dark else jitter((236, 232, 222), rng, 18)
    canvas = new_canvas(rng, base)
    w, h = canvas.size
    ink = contrast(base) if rng.random() < .6 else (vivid(rng) if dark else (
        rng.choice([(20, 20, 24), (30, 40, 110), (110, 20, 20)])))
    margin = w * rng.uniform(.05, .12)
    if rng.random() < .5:
        panel = jitter((250, 250, 246), rng, 6) if not dark else jitter((24, 26, 32), rng, 6)
        px0, py0 = rng.uniform(0, w * .08), rng.uniform(0, h * .08)
        canvas.draw.rectangle((px0, py0, w - rng.uniform(0, w * .08), h - rng.uniform(0, h * .08)),
                              fill=panel)
        ink = contrast(panel)
    split = h * rng.uniform(.3, .45)
    fit_text(canvas, title, (margin, h * .05, w - margin, split), ink,
             max_size=rng.choice((24, 28, 32, 36)), align=rng.choice(("left", "center")))
    numbering, blank = rng.choice(NUMBERING), rng.choice(BLANKS)
    size = rng.randint(14, 22)
    step = (h * .95 - split) / items
    drawn = []
    for n in range(1, items + 1):
        label = numbering.format(n=n)
        canvas.draw.text((margin, split + (n - 1) * step), f"{label} {blank}".rstrip(),
                         font=font(size), fill=ink)
        drawn.append(label)
    canvas.words.append("\n".join(drawn))
    objects: list[str] = []
    if icon:
        s = min(w, h) * rng.uniform(.18, .26)
        x, y = w - s - w * .04, h - s - h * .04
        draw_icon(canvas, icon, (x, y, x + s, y + s), palette(rng))
        objects.append(icon)
    return _finish(canvas, objects, "a typographic image with a numbered list")


def caption_picture(rng: random.Random, setting: str, objects: Sequence[str],
                    caption: str) -> Picture:
    """MM-SafetyBench-style: a scene above a caption band naming the activity."""
    canvas = new_canvas(rng)
    w, h = canvas.size
    cut = h * rng.uniform(.66, .8)
    floor = paint_setting(canvas, setting, (0, 0, w, cut))
    place_objects(canvas, list(objects), floor, palette(rng))
    band = rng.choice([(250, 250, 250), (20, 20, 20), jitter((240, 230, 200), rng, 10)])
    canvas.draw.rectangle((0, cut, w, h), fill=band)
    fit_text(canvas, caption, (w * .04, cut + 4, w * .96, h - 4), contrast(band),
             max_size=rng.choice((20, 24, 28)))
    return _finish(canvas, list(objects), f"{SETTINGS[setting][0]} with a caption")


def note_picture(rng: random.Random, text: str, setting: str | None) -> Picture:
    """Text on a note, board or screen, over a setting or a plain background."""
    canvas = new_canvas(rng)
    w, h = canvas.size
    if setting:
        paint_setting(canvas, setting)
    style = rng.choice(SIGN_STYLES)
    bw, bh = w * rng.uniform(.6, .92), h * rng.uniform(.4, .7)
    left, top = rng.uniform(0, w - bw), rng.uniform(0, (h - bh) * .6)
    area, ink = _panel(canvas, style, (left, top, left + bw, top + bh))
    fit_text(canvas, text, area, ink, max_size=rng.choice((20, 24, 28)))
    where = SETTINGS[setting][0] if setting else "a plain background"
    return _finish(canvas, [], f"a {style} with writing, on {where}")
