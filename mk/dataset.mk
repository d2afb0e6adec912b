# Dataset (issue 4) and demo soundscape. See training/README.md.
#   make dataset      - download Debian source packages, build data/ (manifest, clips, images,
#                       eval mixtures), update coverage fields of Assets/classes.json and
#                       training/reports/dataset*.
#   make demo-audio   - rebuild Assets/demo/soundscape.wav, timeline.json, NOTICE
#   make test-python  - pytest for training/ (no network needed)
#   make near-duplicates - training/dataset/tables/near_duplicates.json: test (and val) pictures with
#                       a near-duplicate in an earlier split, left out of the test figures (needs the
#                       judge's feature cache from make train-separator)
DATASET_APT := fluidsynth fluid-soundfont-gm espeak-ng sox ffmpeg dpkg-dev fonts-dejavu-core librsvg2-bin
DATA_DIR ?= data
DATA_CACHE ?= $(DATA_DIR)/cache

.PHONY: dataset dataset-deps demo-audio test-python have-data near-duplicates

# Training and evaluation targets need the dataset: say so in one line instead of a traceback.
have-data:
	@test -f $(DATA_DIR)/manifest.csv || { echo "$(DATA_DIR)/manifest.csv is missing: build the training dataset first with 'make dataset' (about 4.7 GB of Debian packages, downloaded once)" >&2; exit 1; }

# Installs the system packages only when one of them is missing (idempotent).
dataset-deps:
	@missing=""; for p in $(DATASET_APT); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

dataset: dataset-deps pyenv
	$(VPY) -m training.dataset.build --out $(DATA_DIR) --cache $(DATA_CACHE)

demo-audio: dataset-deps pyenv
	$(VPY) -m training.dataset.make_demo --cache $(DATA_CACHE) --out Assets/demo

# Recomputed when the judge's feature cache is there (make train-separator); otherwise the
# committed table is used as it is (it only depends on data/ and that cache).
near-duplicates: | have-data pyenv-torch
	@if [ -f $(DATA_DIR)/features/judge_lite0_imagenet_id.npz ]; then \
	  $(VPY) -m training.dataset.near_duplicates compute --data $(DATA_DIR); \
	else echo "near-duplicates: no judge feature cache in $(DATA_DIR)/features (make train-separator); using the committed training/dataset/tables/near_duplicates.json"; fi

test-python: dataset-deps pyenv
	$(VPY) -m pytest -q training/tests
