"""Explicit, reviewed source tables besides tables/audio.tsv and tables/images.tsv."""
from __future__ import annotations

# FluidR3_GM (fluid-soundfont-gm, MIT) programs rendered by fluidsynth (zero-based GM
# program numbers; None = the channel-10 standard drum kit). Each program is ONE original
# recording whatever the number of phrases rendered from it.
FLUID_PROGRAMS = {
    "playing piano": [0, 1],
    "playing electronic organ": [16, 19],
    "playing acoustic guitar": [24, 25],
    "playing violin, fiddle": [40],
    "playing cello": [42],
    "playing harp": [46],
    "singing choir": [52, 53],
    "playing trumpet": [56],
    "playing saxophone": [65, 66],
    "playing flute": [73],
    "playing drum kit": [None],
    "church bell ringing": [14],
    "sea waves": [122],
    "bird chirping, tweeting": [123],
    "telephone bell ringing": [124],
    "people clapping": [126],
}
# MIDI note range (low, high) per program for the phrase generator.
FLUID_RANGE = {0: (48, 84), 1: (48, 84), 16: (48, 79), 19: (36, 72), 24: (40, 76),
               25: (40, 76), 40: (55, 91), 42: (36, 67), 46: (36, 84), 52: (48, 72),
               53: (48, 72), 56: (55, 82), 65: (49, 77), 66: (44, 72), 73: (60, 93),
               14: (60, 77), 122: (48, 72), 123: (60, 84), 124: (60, 72), 126: (48, 72)}

# Noto Color Emoji (fonts-noto-color-emoji, OFL/Apache-2.0 images) per class: hex code
# points, "-" joined for sequences. "+TONES" adds the five skin-tone variants.
EMOJI = {
    "dog barking": ["1F415", "1F436", "1F429", "1F9AE"],
    "cat meowing": ["1F408", "1F431", "1F63A", "1F638", "1F408-200D-2B1B"],
    "cow lowing": ["1F404", "1F42E", "1F402"],
    "horse neighing": ["1F40E", "1F434", "1F3C7"],
    "pig oinking": ["1F416", "1F437", "1F43D"],
    "sheep bleating": ["1F411", "1F40F"],
    "chicken crowing": ["1F413"],
    "chicken clucking": ["1F414", "1F424", "1F425", "1F423"],
    "duck quacking": ["1F986"],
    "owl hooting": ["1F989"],
    "bird chirping, tweeting": ["1F426", "1F99C", "1F54A"],
    "crow cawing": ["1F426-200D-2B1B"],
    "frog croaking": ["1F438"],
    "cricket chirping": ["1F997"],
    "bee, wasp, etc. buzzing": ["1F41D"],
    "lions roaring": ["1F981"],
    "wolf howling": ["1F43A"],
    "playing piano": ["1F3B9"],
    "playing acoustic guitar": ["1F3B8"],
    "playing violin, fiddle": ["1F3BB"],
    "playing trumpet": ["1F3BA"],
    "playing saxophone": ["1F3B7"],
    "playing flute": ["1FA88"],
    "playing drum kit": ["1F941"],
    "church bell ringing": ["1F514", "26EA"],
    "singing choir": ["1F9D1-200D-1F3A4+TONES", "1F469-200D-1F3A4", "1F468-200D-1F3A4", "1F3B6"],
    "raining": ["1F327", "2614", "1F302"],
    "thunder": ["26C8", "1F329", "26A1"],
    "sea waves": ["1F30A", "1F3D6"],
    "wind noise": ["1F32C", "1F390", "1F343"],
    "fire crackling": ["1F525"],
    "car passing by": ["1F697", "1F695", "1F699", "1F3CE"],
    "train horning": ["1F682", "1F686", "1F684", "1F685", "1F688", "1F683"],
    "helicopter": ["1F681"],
    "airplane flyby": ["2708", "1F6EB", "1F6EC", "1F6E9"],
    "ambulance siren": ["1F691", "1F6A8", "1F692", "1F693", "1F694"],
    "people speaking": ["1F5E3", "1F4AC", "1F444", "1F9D1-200D-1F3EB+TONES"],
    "people clapping": ["1F44F+TONES"],
    "baby crying": ["1F476+TONES", "1F62D"],
    "people crowd": ["1F465", "1F46A", "1F46B", "1F46C", "1F46D", "1FAC2"],
    "telephone bell ringing": ["260E", "1F4DE", "1F4F1", "1F4F2"],
    "fireworks banging": ["1F386", "1F387", "1F9E8"],
}

# Symbola (fonts-symbola) black-and-white glyphs per class: a third, distinct emoji artwork.
SYMBOLA = {
    "chicken crowing": ["1F413"],
    "frog croaking": ["1F438"],
    "bee, wasp, etc. buzzing": ["1F41D"],
    "lions roaring": ["1F981"],
    "wolf howling": ["1F43A"],
    "playing piano": ["1F3B9"],
    "playing violin, fiddle": ["1F3BB"],
    "playing saxophone": ["1F3B7"],
    "sea waves": ["1F30A"],
    "fire crackling": ["1F525"],
    "helicopter": ["1F681"],
}

# License of the images of each package named in tables/images.tsv (gcompris-qt-data and
# qabcs-data are looked up per file in their machine-readable debian/copyright instead).
IMAGE_LICENSES = {
    "openclipart-png": "public-domain (openclipart)",
    "tuxpaint-stamps-default": "GPL-2",
    "tuxpaint-data": "GPL-2+ (tuxpaint-data debian/copyright; template photos by the Tux Paint authors)",
    "scratch": "CC-BY-SA-3.0 (scratch debian/copyright: Media/*, MIT)",
    "pysiogame": "CC-BY-SA (Art4Apps pictures; pysiogame CREDITS.txt)",
    "0ad-data": "CC-BY-SA-3.0 (0 A.D. art, 0ad-data debian/copyright)",
    "setbfree": "GPL-2+ (setbfree debian/copyright)",
    "vmpk": "GPL-3+ (vmpk debian/copyright)",
    "fonts-symbola": "free for any use (Symbola font, George Douros; fonts-symbola debian/copyright)",
    # second pool (images.tsv 5th column "2")
    "openshot-qt": "CC-BY-SA-4.0 (OpenMoji, openshot-qt debian/copyright: src/emojis/*)",
    "libjs-emojify": "Expat (libjs-emojify debian/copyright: Files: *; EmojiOne 1.x artwork shipped by emojify.js)",
    "firefox-esr": ("CC-BY-4.0 (Twemoji, Copyright 2018 Twitter, Inc and other contributors; TwemojiMozilla.ttf, "
                    "license in firefox-esr omni.ja chrome/toolkit/content/global/license.html#twemoji)"),
    "josm": "public-domain (josm debian/copyright: resources/images/presets/*)",
    "kstars-data": "GPL-2+ (kstars-data debian/copyright: Files: *)",
    "songwrite": "GPL-3+ (songwrite debian/copyright: Files: *)",
    "cricket": ("GPL (cricket debian/copyright: \"Cricket is covered by the GNU General Public License\", "
                "Copyright (c) 1998 Jeff Allen and WebTV Networks, Inc.; logo images/cricket-sm.gif)"),
}
# Packages whose images carry different licenses by folder: (package, path prefix) -> license.
IMAGE_LICENSES_BY_PREFIX = {
    ("mkdocs-material", "usr/share/mkdocs/themes/material/.icons/fontawesome/"):
        "CC-BY-4.0 (Font Awesome Free icons; mkdocs-material debian/copyright: material/.icons/fontawesome/)",
    ("mkdocs-material", "usr/share/mkdocs/themes/material/.icons/material/"):
        "Apache-2.0 (Material Design Icons; mkdocs-material debian/copyright: material/.icons/material/)",
    # Stellarium's sky cultures carry their own licenses (skycultures/<culture>/info.ini; debian/copyright
    # says GPL-2+ for Files: *); only cultures with a free license may be used (several are CC BY-ND/-NC).
    ("stellarium-data", "usr/share/stellarium/skycultures/romanian/"):
        ("CC-BY-SA-3.0 (Stellarium Romanian sky culture art, Mircea Lite; skycultures/romanian/info.ini; "
         "stellarium-data debian/copyright: GPL-2+)"),
    # GCompris' world-music photos are Wikimedia Commons pictures with their own licenses
    # (explore_world_music.rcc resource/music/README); Debian's copyright covers them by Files: * (GPL-3+).
    ("gcompris-qt-data", "usr/share/gcompris-qt/rcc/explore_world_music.rcc#gcompris/src/activities/"
                         "explore_world_music/resource/music/orchestra.webp"):
        ("Public-Domain (\"Orchestra of the 18th Century\", ABC Informatica, Wikimedia Commons; GCompris "
         "explore_world_music resource/music/README; gcompris-qt-data debian/copyright Files: * GPL-3+)"),
}


def image_license(package: str, path: str) -> str:
    """License of an image of tables/images.tsv ("" when unknown)."""
    for (pkg, prefix), lic in IMAGE_LICENSES_BY_PREFIX.items():
        if pkg == package and path.startswith(prefix):
            return lic
    return IMAGE_LICENSES.get(package, "")

# Licenses for the short codes used in tables/audio.tsv.
LICENSE_NOTES = {
    "STK": "CC0/CC-BY/CC-BY-SA per file (supertuxkart-data; see the package's data/licenses)",
    "REDECLIPSE": "CC-BY-SA (redeclipse-data, sounds/ambience readme.txt)",
    "GPL": "GPL (searchandrescue-data debian/copyright)",
}

# espeak-ng voices and sentences for extra (synthetic) speech variety.
ESPEAK_VOICES = ["en", "en-us", "de", "fr", "es", "it", "nl", "pt", "sv", "pl"]
ESPEAK_TEXT = [
    "The weather is lovely today, shall we go for a walk in the park?",
    "Please remember to close the window before you leave the house.",
    "I think the train arrives at half past seven this evening.",
    "Could you tell me where the nearest library is?",
    "We are going to visit my grandmother on Sunday afternoon.",
    "This soup tastes much better with a little bit of pepper.",
]
