# Generator (issue 6): latent autoencoder + flow-matching teacher + reflow student, retrieval bank,
# mixed images, CRS / R@2*. See training/generator/ and training/reports/generator.md.
#   make train-generator  - resumable (checkpoints in training/runs/generator; re-run continues)
#   make eval-generator   - report + plots, then export Assets/models/generator.safetensors,
#                           exemplars.safetensors and the Swift parity fixture
#   make finetune-decoder - decoder-only fine-tune (resumable, <run>/decoder_ft.pt) + held-out
#                           evaluation (<run>/decoder_ft_eval.json); export takes it iff adopted
GEN_RUN ?= training/runs/generator
GEN_CONFIG ?= full

.PHONY: train-generator eval-generator export-generator test-generator finetune-decoder
train-generator: | have-data pyenv-torch
	PYTHONPATH=. $(VPY) -m training.generator.train --config $(GEN_CONFIG) --run $(GEN_RUN)

eval-generator: | have-data pyenv-torch near-duplicates
	@test -f $(GEN_RUN)/teacher.pt || { echo "$(GEN_RUN)/teacher.pt is missing: train the generator first with 'make train-generator'" >&2; exit 1; }
	PYTHONPATH=. $(VPY) -m training.generator.evaluate --run $(GEN_RUN)
	PYTHONPATH=. $(VPY) -m training.generator.export --run $(GEN_RUN)

export-generator: | pyenv-torch
	@test -f $(GEN_RUN)/teacher.pt || { echo "$(GEN_RUN)/teacher.pt is missing: train the generator first with 'make train-generator'" >&2; exit 1; }
	PYTHONPATH=. $(VPY) -m training.generator.export --run $(GEN_RUN)

test-generator: pyenv-torch
	$(VPY) -m pytest -q training/tests/test_generator.py

finetune-decoder: pyenv-torch
	PYTHONPATH=. $(VPY) -m training.generator.finetune_decoder all --run $(GEN_RUN)
