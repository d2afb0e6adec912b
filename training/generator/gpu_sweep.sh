#!/usr/bin/env bash
# Seventh+1 session: one call on a lent GPU machine (optional; CI never has one). Trains, side by
# side, generator runs of the SAME recipe as `make train-generator` (CPU-feasible numbers of
# samples: teacher 6,150 x 256 = 24,600 x 64, student 1,000 x 256 = 4,000 x 64), differing only in
# the autoencoder's length; see training/reports/generator_notes.md "A longer autoencoder".
#   G0: ae_steps 2600 (the shipped recipe)      G1: ae_steps 5200
#   G2: autoencoder alone, ae_steps 10400 with snapshots at 2600 and 5200 (the ceiling curve only)
# SWEEP=2: latent-translation augmentation (G3, G3b); SWEEP=3: multi-subject composites (G0p, C1, C2)
# Needs data/images, data/manifest.csv, data/features/image_embeddings.npz. Writes slim results
# (EMA / weights only, no optimiser state, no reflow pairs) as <run>.tar.gz under $OUT.
set -u
OUT=${OUT:-out/gpu_sweep}; mkdir -p "$OUT"
PY=${PY:-python3}
export PYTHONUNBUFFERED=1
DEV=${DEV:-cuda}; CFG=${CFG:-full}
# DRY=1: a few steps of the tiny config on the CPU, to check the script's plumbing
dry=(); [ "${DRY:-0}" = 1 ] && dry=(ae_steps=20 teacher_steps=20 student_steps=10 pairs=64 'ae_snapshots=[5,10]')
common=(device="\"$DEV\"" threads=2 teacher_batch=256 teacher_steps=6150 teacher_lr=0.0008
        student_batch=256 student_steps=1000 student_lr=0.0002 pair_batch=512 ckpt_every=500)
R=${R:-training/runs/sweep}
slim() {  # $1 = run dir
  $PY - "$1" <<'PYEOF'
import sys, torch, pathlib
r = pathlib.Path(sys.argv[1])
# autoencoders keep enc + dec; teacher and student keep their EMA weights (what is evaluated and
# exported); optimiser states and raw weights stay behind
drop = {"ae": {"opt"}, "teacher": {"opt", "net"}, "student": {"opt", "net"}}
for p in sorted(r.glob("*.pt")):
    kind = p.stem.split("_")[0]
    if kind in drop and not p.name.startswith("slim_"):
        s = torch.load(p)
        torch.save({k: v for k, v in s.items() if k not in drop[kind]}, r / ("slim_" + p.name))
PYEOF
  tar czf "$OUT/$(basename "$1").tar.gz" -C "$1" --exclude='pairs*' --exclude='latents.npz' \
      $(cd "$1" && ls slim_* *.json *.jsonl *.done 2>/dev/null) 2>/dev/null
}
run() {  # name, extra --set values...
  local name=$1; shift
  $PY -m training.generator.train --config $CFG --run $R/$name --set "${common[@]}" "$@" "${dry[@]}" > "$OUT/$name.log" 2>&1
  echo "$name exit $?" >> "$OUT/status.txt"; slim $R/$name
}
if [ "${SWEEP:-1}" = 3 ]; then
  # twelfth session: multi-subject composites for the paper-style mixed image (generator.md, "Twelfth
  # session"). The shipped run's latents (and its autoencoder's composites) are carried in $BASE;
  # no autoencoder is trained: G0p = the shipped recipe on them (control), C1 / C2 = p_comp 0.25 / 0.5.
  BASE=${BASE:-training/runs/gpu12}
  (nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || echo "no GPU") > "$OUT/status.txt"
  for r in G0p C1 C2; do
    mkdir -p $R/$r; cp $BASE/latents.npz $BASE/config.json $R/$r/; touch $R/$r/ae.done $R/$r/latents.done
  done
  for r in C1 C2; do cp $BASE/composites.npz $R/$r/; touch $R/$r/composites.done; done
  (sleep ${DEADLINE:-470}; echo "deadline: partial results" >> "$OUT/status.txt"; for r in G0p C1 C2; do slim $R/$r; done) &
  dog=$!
  run G0p p_comp=0.0 & p0=$!
  run C1 p_comp=0.25 comp_n=2048 & p1=$!
  run C2 p_comp=0.5 comp_n=2048 & p2=$!
  wait $p0 $p1 $p2; kill $dog 2>/dev/null
  cat "$OUT/status.txt"; ls -la "$OUT"; exit 0
fi
if [ "${SWEEP:-1}" = 2 ]; then
  # second call: latent-translation augmentation of the teacher (notes: "a second GPU call")
  (nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || echo "no GPU") > "$OUT/status.txt"
  (sleep ${DEADLINE:-470}; echo "deadline: partial results" >> "$OUT/status.txt"; for r in G3 G3b; do [ -d $R/$r ] && slim $R/$r; done) &
  dog=$!
  run G3 ae_steps=2600 teacher_shift=1 & p0=$!
  run G3b ae_steps=2600 teacher_shift=2 & p1=$!
  wait $p0 $p1; kill $dog 2>/dev/null
  cat "$OUT/status.txt"; ls -la "$OUT"; exit 0
fi
(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || echo "no GPU") > "$OUT/status.txt"
# a watchdog: if the call's time runs short, keep what the runs have checkpointed so far
(sleep ${DEADLINE:-470}; echo "deadline: partial results" >> "$OUT/status.txt"; for r in G0 G1 G2; do [ -d $R/$r ] && slim $R/$r; done) &
dog=$!
run G0 ae_steps=2600 & p0=$!
run G1 ae_steps=5200 & p1=$!
(name=G2; $PY -m training.generator.train --config $CFG --run $R/$name --stages ae --set "${common[@]}" ae_steps=10400 'ae_snapshots=[2600,5200]' "${dry[@]}" > "$OUT/$name.log" 2>&1; echo "$name exit $?" >> "$OUT/status.txt"; slim $R/$name) & p2=$!
wait $p0 $p1 $p2
kill $dog 2>/dev/null
cat "$OUT/status.txt"; ls -la "$OUT"
