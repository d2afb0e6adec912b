# Python environment shared by tools/, training/ and the benchmark's reference implementations.
TORCH_WHEEL ?= $(firstword $(wildcard /opt/wheels/torch-2.13.0+cpu-*.whl) $(shell find / -xdev -name 'torch-2.13.0+cpu-*.whl' 2>/dev/null | head -1))

.PHONY: pyenv pyenv-bench pyenv-torch
$(VENV)/.ok-base: training/requirements.txt training/requirements-nodeps.txt
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --disable-pip-version-check -r training/requirements.txt
	$(VPY) -m pip install -q --disable-pip-version-check --no-deps -r training/requirements-nodeps.txt
	touch $@

$(VENV)/.ok-torch: $(VENV)/.ok-base
	@test -n "$(TORCH_WHEEL)" || { echo "error: the CPU torch wheel (torch-2.13.0+cpu) was not found on this machine; see shared docs data-and-models.md" >&2; exit 1; }
	$(VPY) -m pip install -q --disable-pip-version-check "$(TORCH_WHEEL)"
	touch $@

pyenv: $(VENV)/.ok-base
pyenv-bench: pyenv
pyenv-torch: $(VENV)/.ok-torch

# Golden log-mel fixture for Tests/FeaturesTests (needs the scratch package from `make yamnet-fixtures`).
.PHONY: logmel-fixture
logmel-fixture: $(SCRATCH_SOUNDS) | pyenv
	$(VPY) tools/make_logmel_fixture.py --sounds $(SCRATCH_SOUNDS)
