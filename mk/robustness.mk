# Robustness (issue 8): fuzzing, sanitizers, soak. Figures go to ROBUSTNESS.md.
#   make fuzz      - libFuzzer (+ASan) on each parser for FUZZ_SECONDS (default 60 s each);
#                    crash inputs land in Tests/Fuzz/corpus/<target>/ (commit them: `make test`
#                    replays that corpus through the same harness in FuzzCorpusTests)
#   make sanitize  - AudioInputTests and PipelineTests (ring buffer, capture, scene hand-off)
#                    under ThreadSanitizer, then AddressSanitizer (own scratch paths)
#   make soak      - `avgas-bench soak`: the demo soundscape looped through one Analyzer for
#                    SOAK_HOURS hours of audio (default 24), memory / fds / determinism report
#   make soak-images - the same with images for SOAK_IMAGES_HOURS (default 1)
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= safetensors graph program vocabulary
FUZZ_BUILD := .build-fuzz
FUZZ_FLAGS := -sanitize=fuzzer,address -parse-as-library -O -g
SOAK_HOURS ?= 24
SOAK_IMAGES_HOURS ?= 1
SOAK_ARGS ?=

.PHONY: fuzz fuzz-build sanitize sanitize-thread sanitize-address soak soak-images

# The fuzzers are built by swiftc directly (never by SwiftPM: a libFuzzer entry point must not
# be linked into normal builds). NeuralNet is compiled whole; of Listening only the vocabulary
# parser is needed, so the fuzz "Listening" module holds ClassVocabulary.swift alone.
$(FUZZ_BUILD)/NeuralNet.swiftmodule: $(wildcard Sources/NeuralNet/*.swift)
	@mkdir -p $(FUZZ_BUILD)
	$(SWIFT)c $(FUZZ_FLAGS) -module-name NeuralNet -emit-module -emit-library -static \
	  -emit-module-path $(FUZZ_BUILD)/NeuralNet.swiftmodule -I Sources/COpenBLAS \
	  -o $(FUZZ_BUILD)/libNeuralNet.a $^ 2>&1 | grep -v 'Cannot export local symbol' || true
	@test -f $(FUZZ_BUILD)/libNeuralNet.a

$(FUZZ_BUILD)/Listening.swiftmodule: Sources/Listening/ClassVocabulary.swift
	@mkdir -p $(FUZZ_BUILD)
	$(SWIFT)c $(FUZZ_FLAGS) -module-name Listening -emit-module -emit-library -static \
	  -emit-module-path $(FUZZ_BUILD)/Listening.swiftmodule -o $(FUZZ_BUILD)/libListening.a $^ 2>&1 | grep -v 'Cannot export local symbol' || true
	@test -f $(FUZZ_BUILD)/libListening.a

$(FUZZ_BUILD)/fuzz-%: fuzz/%.swift Tests/ListeningTests/FuzzCorpusTests.swift $(FUZZ_BUILD)/NeuralNet.swiftmodule $(FUZZ_BUILD)/Listening.swiftmodule
	$(SWIFT)c $(FUZZ_FLAGS) -D AVGAS_FUZZING -module-name Fuzz$* -I $(FUZZ_BUILD) -I Sources/COpenBLAS \
	  fuzz/$*.swift Tests/ListeningTests/FuzzCorpusTests.swift -L $(FUZZ_BUILD) -lNeuralNet -lListening -lopenblas \
	  -o $@ 2>&1 | grep -v 'Cannot export local symbol' || true
	@test -x $@

fuzz-build: deps $(foreach t,$(FUZZ_TARGETS),$(FUZZ_BUILD)/fuzz-$(t))

# Each target starts from its committed corpus (copied: new coverage inputs stay in the
# scratch folder) and writes any crashing input next to the committed ones.
fuzz: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$t; cp -n Tests/Fuzz/corpus/$$t/* $(FUZZ_BUILD)/corpus/$$t/ 2>/dev/null || true; \
	  echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
	  $(FUZZ_BUILD)/fuzz-$$t $(FUZZ_BUILD)/corpus/$$t -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 \
	    -timeout=10 -max_len=65536 -print_final_stats=1 -dict=fuzz/json.dict \
	    -artifact_prefix=Tests/Fuzz/corpus/$$t/crash- 2>&1 | tee $(FUZZ_BUILD)/$$t.log | grep -E '^(#[0-9]+ +DONE|==[0-9]+==ERROR|stat::number_of_executed_units|stat::peak_rss|Done )' ; \
	  if grep -q -E '==[0-9]+==ERROR|deadly signal|Fatal error' $(FUZZ_BUILD)/$$t.log; then echo "fuzz $$t: CRASH (input in Tests/Fuzz/corpus/$$t/)"; exit 1; fi; \
	done; echo "fuzz: no crashes"

# Sanitizer builds use their own scratch paths so they never disturb the normal build.
SAN_FILTER := AudioInputTests|PipelineTests|ParallelLayerTests|YAMNetThreadsTests
sanitize: sanitize-thread sanitize-address

# Besides the unit tests, the instrumented binary itself runs a paced file with frames (file
# thread -> ring -> analysis thread -> SceneStore -> render loop): any report fails the run.
SAN_RUN_ARGS := --input Assets/demo/soundscape.wav --realtime --headless --no-images --size 320x180 --fps 10 --duration 4 --quiet
sanitize-thread: deps
	$(SWIFT) build --build-tests -Xswiftc -sanitize=thread --scratch-path .build-tsan
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" $(SWIFT) test --skip-build --scratch-path .build-tsan --filter '$(SAN_FILTER)'
	rm -rf .build-tsan/frames && TSAN_OPTIONS="halt_on_error=1 exitcode=66" .build-tsan/debug/avgas-live $(SAN_RUN_ARGS) --frames .build-tsan/frames
	@echo "sanitize-thread: clean"

sanitize-address: deps
	$(SWIFT) build --build-tests -Xswiftc -sanitize=address --scratch-path .build-asan
	ASAN_OPTIONS="detect_leaks=0" $(SWIFT) test --skip-build --scratch-path .build-asan --filter '$(SAN_FILTER)'
	rm -rf .build-asan/frames && ASAN_OPTIONS="detect_leaks=0" .build-asan/debug/avgas-live $(SAN_RUN_ARGS) --frames .build-asan/frames
	@echo "sanitize-address: clean"

soak: deps
	$(SWIFT) build -c release --product avgas-bench
	.build/release/avgas-bench soak --hours $(SOAK_HOURS) $(SOAK_ARGS)

# The same with images (separator + generator + exemplars, one headless frame per hop) for
# SOAK_IMAGES_HOURS hours of audio (default 1): about 1-7x real time on 2 cores.
soak-images: deps
	$(SWIFT) build -c release --product avgas-bench
	.build/release/avgas-bench soak --images --hours $(SOAK_IMAGES_HOURS) --report-minutes 5 $(SOAK_ARGS)
