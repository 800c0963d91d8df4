# warehouse-synth: render -> train -> eval -> video.
#   make demo     the whole chain at laptop size (configs/*_demo.yaml), ~30 min on 2 CPU cores
#   make test     the test suite (sets everything up first)
#   make all      the same chain with the full configs (meant for a GPU machine)
# Every stage target takes ARGS="..." (extra flags or key=value overrides) and a variable
# per input/output (DATA=, RUN=, CKPT=, SOURCE=, ...). Outputs are files, so a rerun only
# redoes what changed and an interrupted stage resumes.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTHON ?= python3.11

# PROFILE=demo picks the *_demo configs and demo folder names; `make demo` sets it.
# PROFILE=cpu is the longer CPU-only recipe (render_cpu + train_cpu, ~2 h of training on 2
# cores; eval, clip and video at laptop size): `make PROFILE=cpu render render-test train eval`.
PROFILE ?= full
ifeq ($(PROFILE),demo)
  SFX  := _demo
  NAME := demo
else ifeq ($(PROFILE),cpu)
  SFX  := _demo
  NAME := cpu
else
  SFX  :=
  NAME := synth
endif
MAIN_SFX := $(if $(filter cpu,$(PROFILE)),_cpu,$(SFX))

# A config file and the _BASE_ files it inherits from: a target is rebuilt when any of them changes.
config_chain = $(1) $(foreach b,$(shell sed -n 's/^_BASE_: *\([^ #]*\).*/\1/p' $(1) 2>/dev/null),$(call config_chain,$(dir $(1))$(b)))
RENDER_CONFIG ?= configs/render$(MAIN_SFX).yaml
TRAIN_CONFIG  ?= configs/train$(MAIN_SFX).yaml
EVAL_CONFIG   ?= configs/eval$(SFX).yaml
VIDEO_CONFIG  ?= configs/video$(SFX).yaml
# CLIP_SCENARIO=near_miss|zone_entry|line_cross: a scripted clip for the safety rules (data/clip_<scenario>)
CLIP_SCENARIO ?=
CLIP_CONFIG   ?= $(if $(CLIP_SCENARIO),configs/clip_scenario.yaml,configs/clip$(SFX).yaml)

HUMANS     ?= assets_cache/humans
HUMANS_N   ?= 24
DATA       ?= data/$(NAME)
TEST_DATA  ?= data/$(NAME)_test
TEST_SEED  ?= 1000003
TEST_N     ?= $(if $(filter demo,$(PROFILE)),100,$(if $(filter cpu,$(PROFILE)),200,500))
RUN        ?= runs/$(NAME)
CKPT       ?= $(RUN)/best.pt
# what must exist before CKPT can be used: the finished run when CKPT is the default one
CKPT_DEP    = $(if $(filter gt,$(CKPT)),,$(if $(filter $(RUN)/best.pt,$(CKPT)),$(RUN)/summary.json,$(CKPT)))
EVAL_DIR   ?= $(RUN)/eval/$(notdir $(TEST_DATA))
CLIP       ?= $(if $(CLIP_SCENARIO),data/clip_$(CLIP_SCENARIO),data/clip$(SFX))
# RULES=path/rules.yaml: safety analytics on the video (events, OUT.events.csv); CKPT=gt: a clip's truth as detections
RULES      ?=
SOURCE     ?= $(CLIP)
VIDEO_OUT  ?= outputs/video/$(notdir $(basename $(SOURCE))).mp4
ONNX       ?= $(RUN)/model.onnx
PREVIEW    ?= $(DATA)/preview
YOLO       ?= $(DATA)_yolo
RUNS       ?= $(wildcard runs/*)
# render processes (blender.render --jobs): 2 on the laptop profiles, where one process leaves a
# core idle while it builds and annotates a frame (bench/render_jobs.py: 0.89x the time)
RENDER_JOBS ?= $(if $(filter demo cpu,$(PROFILE)),2,1)
ARGS       ?=
# What the video depends on: the clip when SOURCE is the clip, else the file, folder (and its
# files) or glob's matches; a camera or stream is no file, so it is always rerun.
VIDEO_DEP   = $(if $(filter $(CLIP),$(SOURCE)),$(CLIP)/annotations.json,$(or $(wildcard $(SOURCE) $(SOURCE)/*),FORCE))
# A stage that fails or is interrupted after starting its output keeps it (partial video,
# ONNX that failed parity: its summary says why) but dates it to 1970, so the next make redoes
# it instead of trusting it. Append to the recipe's command.
OUTDATE_ON_FAILURE = || { rc=$$?; touch -c -d @0 $@; exit $$rc; }

.PHONY: help setup humans render render-test preview preview-aug train eval compare clip video \
        export convert bench heldout lint test test-fast demo all clean clean-all vtest FORCE

help:
	@echo "make demo        whole chain at laptop size (render, train, eval, clip, video)"
	@echo "make test        run the tests (sets everything up first)"
	@echo "make setup       create $(VENV) and install the package, Debian libs bpy needs"
	@echo "make render      render $(DATA) with $(RENDER_CONFIG)  (+ render-test: $(TEST_DATA))"
	@echo "make preview     contact sheet + statistics of $(DATA) into $(PREVIEW)"
	@echo "make train       train $(RUN) on $(DATA) with $(TRAIN_CONFIG)"
	@echo "make eval        evaluate $(CKPT) on $(TEST_DATA) into $(EVAL_DIR)"
	@echo "make compare     one table over RUNS=\"$(RUNS)\""
	@echo "make clip        render the ground-truth video clip $(CLIP)"
	@echo "make video       run $(CKPT) on SOURCE=$(SOURCE) -> $(VIDEO_OUT)"
	@echo "make export      ONNX export of $(CKPT) with a parity check -> $(ONNX)"
	@echo "make convert     $(DATA) as an Ultralytics YOLO-seg dataset -> $(YOLO)/data.yaml"
	@echo "make bench       benchmarks (JSON) into outputs/bench/"
	@echo "make heldout     AP drop on held-out material families -> runs/heldout/heldout.md"
	@echo "make all         the chain with the full configs (GPU-sized)"
	@echo "Variables: PROFILE=demo|full DATA= RUN= CKPT= SOURCE= ARGS=\"key=value ...\""

# ---------------------------------------------------------------- setup
# Reinstalls only when pyproject.toml changes.
setup: $(STAMP)
$(STAMP): pyproject.toml
	@bash scripts/system_deps.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
	@# trackeval >= 1.1 wheels demand numpy>=2 (bpy needs <2); 1.0.0's code runs fine on 1.26
	$(PY) -m pip install -q --no-deps 'trackeval==1.0.0' 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import torch, torchvision, bpy, pycocotools, cv2, albumentations, supervision, trackeval, anny" 
	@touch $@

# Posed human meshes from `anny` (the first run builds anny's ~0.8 GB cache, ~2 min).
humans: $(HUMANS)/index.json
$(HUMANS)/index.json: $(STAMP) pipeline/humans.py
	$(PY) -m pipeline.humans --out $(HUMANS) --count $(HUMANS_N) --seed 0

# ---------------------------------------------------------------- render
render: $(DATA)/annotations.json
$(DATA)/annotations.json: $(call config_chain,$(RENDER_CONFIG)) $(HUMANS)/index.json
	$(PY) -m blender.render --config $(RENDER_CONFIG) --out $(DATA) --jobs $(RENDER_JOBS) humans_dir=$(HUMANS) $(ARGS)

render-test: $(TEST_DATA)/annotations.json
$(TEST_DATA)/annotations.json: $(call config_chain,$(RENDER_CONFIG)) $(HUMANS)/index.json
	$(PY) -m blender.render --config $(RENDER_CONFIG) --out $(TEST_DATA) --seed $(TEST_SEED) \
	    --num-images $(TEST_N) --jobs $(RENDER_JOBS) humans_dir=$(HUMANS) $(ARGS)

preview: $(PREVIEW)/stats.json
$(PREVIEW)/stats.json: $(DATA)/annotations.json
	$(PY) -m pipeline.preview --data $(DATA) --out $(PREVIEW) $(ARGS) $(OUTDATE_ON_FAILURE)

preview-aug: $(RUN)/preview_aug.png
$(RUN)/preview_aug.png: $(DATA)/annotations.json $(call config_chain,$(TRAIN_CONFIG))
	$(PY) -m pipeline.preview_aug --config $(TRAIN_CONFIG) --data $(DATA) --out $@ $(ARGS)

# Crowd regions are left out (YOLO has no ignore regions); ARGS="--val $(TEST_DATA)" for a
# separate val set, else the training split.
convert: $(YOLO)/data.yaml
$(YOLO)/data.yaml: $(DATA)/annotations.json
	$(PY) -m pipeline.yolo --data $(DATA) --out $(YOLO) $(ARGS)

# ---------------------------------------------------------------- train / eval
# summary.json is written only when training reaches max_iters (best.pt appears at the first
# validation), so a killed run is not mistaken for a finished one and resumes from last.pt.
train: $(RUN)/summary.json
$(RUN)/summary.json: $(DATA)/annotations.json $(call config_chain,$(TRAIN_CONFIG))
	$(PY) -m pipeline.train --config $(TRAIN_CONFIG) --data $(DATA) --out $(RUN) \
	    $(if $(wildcard $(RUN)/last.pt),--resume) $(ARGS)

eval: $(EVAL_DIR)/metrics.json
$(EVAL_DIR)/metrics.json: $(CKPT_DEP) $(TEST_DATA)/annotations.json
	$(PY) -m pipeline.evaluate --config $(EVAL_CONFIG) --checkpoint $(CKPT) --data $(TEST_DATA) \
	    --out $(EVAL_DIR) $(ARGS)

compare:
	$(PY) -m pipeline.compare $(RUNS) --out outputs/compare.md --curves outputs/compare_curves.png $(ARGS)

# ---------------------------------------------------------------- video
clip: $(CLIP)/annotations.json
$(CLIP)/annotations.json: $(call config_chain,$(CLIP_CONFIG)) $(HUMANS)/index.json
	$(PY) -m blender.clip --config $(CLIP_CONFIG) --out $(CLIP) humans_dir=$(HUMANS) \
	    $(if $(CLIP_SCENARIO),clip.scenario=$(CLIP_SCENARIO) clip.name=clip_$(CLIP_SCENARIO)) $(ARGS)

# With no SOURCE the ground-truth clip is rendered first and scored.
video: $(VIDEO_OUT)
$(VIDEO_OUT): $(VIDEO_DEP) $(CKPT_DEP) $(call config_chain,$(VIDEO_CONFIG)) $(RULES)
	$(PY) -m pipeline.video --config $(VIDEO_CONFIG) --checkpoint $(CKPT) --source $(SOURCE) \
	    --out $(VIDEO_OUT) $(if $(RULES),--rules $(RULES)) $(ARGS) $(OUTDATE_ON_FAILURE)

# The parity check runs on the test set's images when it has been rendered.
export: $(ONNX)
$(ONNX): $(CKPT_DEP) $(if $(wildcard $(TEST_DATA)/images),$(TEST_DATA)/annotations.json)
	$(PY) -m pipeline.export --checkpoint $(CKPT) --out $(ONNX) \
	    $(if $(wildcard $(TEST_DATA)/images),--check-images $(TEST_DATA)/images) $(ARGS) $(OUTDATE_ON_FAILURE)

# Real footage: Debian's opencv-doc ships vtest.avi, a real pedestrian clip.
vtest:
	@bash scripts/system_deps.sh opencv-doc
	@f=$$(find /usr/share/doc/opencv-doc -name 'vtest.avi*' | head -1); \
	  mkdir -p data/real; case "$$f" in *.gz) gunzip -c "$$f" > data/real/vtest.avi;; *) cp "$$f" data/real/vtest.avi;; esac; \
	  echo "data/real/vtest.avi"

FORCE:

# ---------------------------------------------------------------- chains
demo:
	$(MAKE) PROFILE=demo render render-test train eval clip video preview
	@$(MAKE) --no-print-directory PROFILE=demo demo-summary

demo-summary:
	@echo ""
	@echo "demo done:"
	@echo "  dataset      $(DATA)/images, $(DATA)/annotations.json  (preview: $(PREVIEW)/contact_sheet.png)"
	@echo "  model        $(RUN)/best.pt  (learning curve: $(RUN)/curve.png; tensorboard --logdir $(RUN)/tb)"
	@echo "  evaluation   $(EVAL_DIR)/report.md"
	@echo "  video        $(VIDEO_OUT)  (+ .jsonl detections, .summary.json)"

all:
	$(MAKE) PROFILE=full render render-test train eval clip video preview

# ---------------------------------------------------------------- checks
test: $(STAMP) $(HUMANS)/index.json
	@$(PY) -m pytest $(ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-fast: $(STAMP)
	@$(PY) -m pytest -m "not blender and not slow" $(ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: $(STAMP) $(HUMANS)/index.json
	@mkdir -p outputs/bench
	$(PY) -m bench.render | tee outputs/bench/render.json
	$(PY) -m bench.render_jobs humans_dir=$(HUMANS) | tee outputs/bench/render_jobs.json
	$(PY) -m bench.train | tee outputs/bench/train.json
	$(PY) -m bench.eval | tee outputs/bench/eval.json
	$(PY) -m bench.video | tee outputs/bench/video.json
	$(PY) -m bench.crowd | tee outputs/bench/crowd.json

# Held-out material families (README "Measuring variety"): ~25 min per group on 2 cores.
heldout: $(STAMP) $(HUMANS)/index.json
	$(PY) -m bench.heldout --humans $(HUMANS) $(ARGS)

lint: $(STAMP)
	$(PY) -m ruff check blender pipeline tests bench

clean:
	rm -rf data/demo data/demo_test data/clip_demo runs/demo outputs

clean-all: clean
	rm -rf $(VENV) assets_cache data runs
