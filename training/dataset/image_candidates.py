"""Propose image table lines (tables/images.tsv) from file names; a person reviews the output.

    python -m training.dataset.image_candidates > /tmp/cand.tsv

The committed tables/images.tsv is the reviewed result: wrong matches removed by hand.
This script is a helper for maintainers, not part of `make dataset`.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from .readers import read_rcc

# class -> (regex on the file name, allowed folder prefixes)
RULES = {
    "dog barking": (r"dog|puppy|beagle|bulldog|black_lab", ["animals", "babyshapes", "explore_farm", "lang"]),
    "cat meowing": (r"(^|_|/)cat|kitten|gatt|housecats", ["animals/mammals/housecats", "animals/mammals/cartoon_cat", "explore_farm", "lang", "erase", "halloween/blackcat"]),
    "cow lowing": (r"cow|bull\.|calf", ["animals", "explore_farm", "lang", "erase"]),
    "horse neighing": (r"horse|cavallo", ["animals", "explore_farm", "lang", "erase"]),
    "pig oinking": (r"pig", ["animals", "explore_farm", "lang"]),
    "sheep bleating": (r"sheep|lamb|ram\.", ["animals", "explore_farm", "lang"]),
    "chicken crowing": (r"rooster|gallo", ["animals"]),
    "chicken clucking": (r"hen[_.]|chicken|chick|pollo", ["animals", "explore_farm", "lang", "easter"]),
    "duck quacking": (r"duck", ["animals", "explore_farm", "lang", "colors", "toys"]),
    "owl hooting": (r"owl|gufo", ["animals", "explore_farm", "lang"]),
    "bird chirping, tweeting": (r"bird|sparrow|lark|uccell|robin|finch|lorikeet|rosella|magpie|cuckoo", ["animals", "lang", "easter"]),
    "crow cawing": (r"crow[_.]|raven", ["animals", "lang"]),
    "frog croaking": (r"frog", ["animals", "lang"]),
    "cricket chirping": (r"cricket|grasshopper|locust", ["animals", "lang"]),
    "bee, wasp, etc. buzzing": (r"bee[_.]|bees|wasp|hornet|bumble", ["animals", "lang", "erase"]),
    "lions roaring": (r"lion|leone", ["animals", "lang"]),
    "wolf howling": (r"wolf", ["animals", "lang"]),
    "playing piano": (r"piano", ["recreation/music", "instruments", "hobbies/music", "lang"]),
    "playing electronic organ": (r"organ|keyboard", ["recreation/music", "instruments", "hobbies/music"]),
    "playing acoustic guitar": (r"guitar", ["recreation/music", "instruments", "hobbies/music"]),
    "playing violin, fiddle": (r"violin|fiddle", ["recreation/music", "instruments", "hobbies/music", "lang"]),
    "playing cello": (r"cello", ["recreation/music", "instruments", "hobbies/music"]),
    "playing harp": (r"harp", ["recreation/music", "instruments", "hobbies/music"]),
    "playing trumpet": (r"trumpet", ["recreation/music", "instruments", "hobbies/music"]),
    "playing saxophone": (r"sax", ["recreation/music", "instruments", "hobbies/music", "people"]),
    "playing flute": (r"flute", ["recreation/music", "instruments", "hobbies/music"]),
    "playing drum kit": (r"drum", ["recreation/music", "instruments", "hobbies/music"]),
    "church bell ringing": (r"bell|church|cathedral|chapel", ["recreation", "babymatch", "buildings", "categorization", "explore_monuments", "town"]),
    "singing choir": (r"choir|sing", ["recreation/music", "people"]),
    "raining": (r"rain|umbrella|cloud", ["signs_and_symbols/weather", "computer/icons", "tools/umbrella", "lang"]),
    "thunder": (r"thunder|lightning|storm", ["signs_and_symbols/weather", "naturalforces", "computer/icons"]),
    "sea waves": (r"wave|sea[0-9_.]|ocean|beach", ["clickgame", "lang", "geography", "special"]),
    "wind noise": (r"wind", ["categorization", "details", "signs_and_symbols/weather", "babymatch", "computer/icons"]),
    "fire crackling": (r"fire[_.-]|flame|campfire", ["naturalforces", "recreation/party/fire", "signs_and_symbols/flame", "followline", "louis-braille/resource/fireplace", "lang", "people/smilies/fire"]),
    "car passing by": (r"car[_.]|cars|auto|sedan|beetle|sportscar|truck", ["transportation", "vehicles", "babymatch", "baby_tangram", "lang"]),
    "train horning": (r"train|locomotive|caboose|carriage|boxcar|tender", ["transportation", "vehicles", "recreation/toys", "lang"]),
    "helicopter": (r"helicopter|copter", ["transportation", "vehicles", "lang"]),
    "airplane flyby": (r"plane|jet|airliner|747", ["transportation", "vehicles", "babymatch", "braille_fun", "military", "lang"]),
    "ambulance siren": (r"ambulance|siren|police|fire_?engine|firetruck", ["transportation", "vehicles", "people"]),
    "people speaking": (r"speak|talk|speech|conversation|mouth|lips", ["people", "shapes/callouts"]),
    "people clapping": (r"clap|applau|hands?_", ["people"]),
    "baby crying": (r"baby", ["people", "family", "lang"]),
    "people crowd": (r"crowd|people|group|family", ["people", "lang"]),
    "telephone bell ringing": (r"phone|telefon", ["office/telephone", "computer/classic_phone"]),
    "vacuum cleaner cleaning floors": (r"vacuum", ["tools", "household"]),
    "fireworks banging": (r"firework", ["recreation", "seasonal"]),
}


def candidates(cache: Path):
    out = []
    oc = cache / "x/openclipart-png/usr/share/openclipart/png"
    for p in sorted(oc.rglob("*.png")):
        rel = p.relative_to(oc).as_posix()
        out.append(("openclipart-png", f"usr/share/openclipart/png/{rel}", rel))
    tp = cache / "x/tuxpaint-stamps-default/usr/share/tuxpaint/stamps"
    for p in sorted(list(tp.rglob("*.png")) + list(tp.rglob("*.svg"))):
        rel = p.relative_to(tp).as_posix()
        out.append(("tuxpaint-stamps-default", f"usr/share/tuxpaint/stamps/{rel}", rel))
    rdir = cache / "x/gcompris-qt-data/usr/share/gcompris-qt/rcc"
    for r in sorted(rdir.glob("*.rcc")):
        for e in read_rcc(r):
            if e.path.endswith((".webp", ".png", ".svg", ".jpg")):
                rel = e.path.replace("gcompris/src/activities/", "")
                out.append(("gcompris-qt-data", f"usr/share/gcompris-qt/rcc/{r.name}#{e.path}", rel))
    return out


def main() -> None:
    cache = Path(sys.argv[1] if len(sys.argv) > 1 else "data/cache")
    cands = candidates(cache)
    for cls, (rx, dirs) in RULES.items():
        r = re.compile(rx, re.I)
        for pkg, path, rel in cands:
            name = rel.rsplit("/", 1)[-1]
            if r.search(name) and any(d in rel for d in dirs):
                print(f"{cls}\t{pkg}\t{path}")


if __name__ == "__main__":
    main()
