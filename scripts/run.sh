#!/usr/bin/env bash
# `make run`: live capture in a window when this machine has a sound card and a display;
# otherwise the bundled demo soundscape, rendered headless to out/demo.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.build/release/avgas-live
DEMO=Assets/demo/soundscape.wav
OUT=out/demo

has_card() { [ -r /proc/asound/cards ] && ! grep -q "no soundcards" /proc/asound/cards && [ -n "$(cat /proc/asound/cards)" ]; }
has_display() { [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; }

if has_card && has_display; then
    echo "make run: sound card and display found: live capture from '${AVGAS_DEVICE:-default}' (Q or Esc quits)"
    exec "$BIN" --device "${AVGAS_DEVICE:-default}" "$@"
fi

why="no sound card"; has_card && why="no display"; (! has_card && ! has_display) && why="no sound card and no display"
echo "make run: $why here: rendering the demo soundscape ($DEMO) headless"
rm -rf "$OUT"
mkdir -p "$OUT"
"$BIN" --input "$DEMO" --headless --frames "$OUT/frames" --fps 10 --events "$OUT/events.jsonl" \
    --contact-sheet "$OUT/contact_sheet.png" --record "$OUT/demo.mp4" "$@"
n=$(ls "$OUT/frames" | wc -l)
echo "make run: $n frames in $OUT/frames/"
echo "make run: contact sheet (one frame per second) in $OUT/contact_sheet.png"
echo "make run: video in $OUT/demo.mp4, events in $OUT/events.jsonl"
