# Separator side of AV-GAS (issue 5): visual embedding space, audio feature caches, separator +
# no-separator ablation, image judge, export, evaluation. Code: training/avgas/. Caches: data/features/.
#   make visual-embeddings  - EfficientNet-Lite0 features of all dataset images -> PCA-128 embedding space
#                             (data/features/image_embeddings.npz, visual_projection.npz, README)
#   make separator-features - YAMNet (float ONNX, onnxruntime) embeddings of random training windows
#                             (train/val mixtures of 0-3 sources, augmented) and of the fixed eval mixtures
#   make train-separator    - judge (train-only, chosen on val; then refitted on train + val; then
#                             the multi-subject recipe, val study + refit, judge_multilabel.py) +
#                             separator + ablation training (resumable checkpoints under
#                             data/features/ckpt/), export to Assets/models/*.safetensors + parity fixture
#   make eval-separator     - training/reports/separator.md with tables and plots
SEP_FEAT := data/features
SEP_THREADS ?= 1
SEP_WORLD ?= 2

.PHONY: visual-embeddings separator-features train-separator eval-separator

$(SEP_FEAT)/image_embeddings.npz: | have-data pyenv-torch
	$(VPY) -m training.avgas.visual --data data --threads $(SEP_THREADS)

visual-embeddings: $(SEP_FEAT)/image_embeddings.npz

# Two processes share the window chunks (each chunk seeded by its index: same data either way).
$(SEP_FEAT)/audio_train.npz: | have-data pyenv-torch yamnet-float-onnx
	$(VPY) -m training.avgas.features eval --data data
	for r in $$(seq 1 $$(($(SEP_WORLD) - 1))); do \
	  $(VPY) -m training.avgas.features train --data data --rank $$r --world $(SEP_WORLD) & done; \
	$(VPY) -m training.avgas.features train --data data --rank 0 --world $(SEP_WORLD); wait
	$(VPY) -m training.avgas.features train --data data --rank 0 --world 1

# Validation mixtures (like the fixed test sets, from val-split recordings) for presence thresholds.
$(SEP_FEAT)/audio_val_clips.npz: | have-data pyenv-torch yamnet-float-onnx
	$(VPY) -m training.avgas.features valclips --data data

separator-features: $(SEP_FEAT)/audio_train.npz $(SEP_FEAT)/audio_val_clips.npz

train-separator: | have-data
train-separator: visual-embeddings separator-features
	$(VPY) -m training.avgas.judge train --data data --threads $(SEP_THREADS)
	$(VPY) -m training.avgas.judge_refit --data data --threads $(SEP_THREADS)
	$(VPY) -m training.avgas.judge_multilabel --data data --threads $(SEP_THREADS)
	$(VPY) -m training.avgas.judge_multilabel --data data --threads $(SEP_THREADS) --refit
	$(VPY) -m training.avgas.train --data data --threads $(SEP_THREADS)

eval-separator: $(SEP_FEAT)/audio_val_clips.npz | have-data pyenv-torch near-duplicates
	$(VPY) -m training.avgas.evaluate --data data --threads $(SEP_THREADS)

# Learned presence head (listening, issue 3; the default `--presence head`): training windows from
# the TRAIN recordings of the frozen split (training/avgas/presence_split.json), early stopping and
# choices on VAL, export to Assets/models/presence.safetensors with a Swift parity fixture.
# `python -m training.avgas.presence study` re-runs the variant comparison of
# training/reports/listening.md; `... presence final` the one test evaluation.
.PHONY: train-presence
train-presence: | have-data pyenv-torch yamnet-float-onnx
	$(VPY) -m training.avgas.presence_data windows --split train --scenes 8000
	$(VPY) -m training.avgas.presence_data windows --split val --scenes 1000 --seed 1
	$(VPY) -m training.avgas.presence_data clips --split val
	$(VPY) -m training.avgas.presence export
