# Citadel's team server image: `citadel serve` with the embedding model and the spaCy model
# baked in, so that a container never downloads anything (air-gapped after the build).
# Built by `docker compose build`; see docs/deployment.md.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: the same `make install` that CI runs, into /opt/venv ---------------------------
FROM ${PYTHON_IMAGE} AS build

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

# PyPI's Linux torch wheel is the CUDA build (several GB); the image needs the CPU one.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

WORKDIR /app
COPY pyproject.toml Makefile README.md ./
COPY rag ./rag
COPY ingest ./ingest
COPY ui ./ui
# The pip cache survives between builds: a code change reinstalls from cached wheels.
RUN --mount=type=cache,target=/root/.cache/pip \
    make install VENV=/opt/venv PYTHON=python3 TORCH_INDEX_URL="${TORCH_INDEX_URL}" \
    && python3 -m compileall -q /app/rag /app/ingest /app/ui

# ---- runtime: the venv and the code, no compiler -------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# libmagic1: python-magic's library, which unstructured uses to detect file types (as on the
# development machines); libgomp1: OpenMP, which the embedded llama.cpp (xllamacpp) needs;
# tesseract-ocr with English and French: OCR of scanned pages and images (pdfium, a wheel,
# renders the PDF pages). No poppler or LibreOffice.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmagic1 libgomp1 \
       tesseract-ocr tesseract-ocr-eng tesseract-ocr-fra \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 citadel \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/citadel citadel \
    && mkdir /data \
    && chown citadel:citadel /data

COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    OPENBLAS_NUM_THREADS=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    CITADEL_DATA_DIR=/data \
    CITADEL_SERVER__HOST=0.0.0.0 \
    CITADEL_SERVER__PORT=8000

# Numeric, so that a runtime checking for a non-root user (runAsNonRoot) can tell.
USER 10001:10001
WORKDIR /home/citadel

# Proof that the image works offline: with no network at all, load the spaCy model, embed
# with the packaged embedding model and ingest one document through the real pipeline.
RUN --network=none set -e; \
    python -c "import en_core_web_sm; en_core_web_sm.load()"; \
    python -c "from rag.offline import enforce_offline; enforce_offline(); \
from rag.embedder import SentenceTransformerEmbedder; from rag.settings import Settings; \
e = SentenceTransformerEmbedder(Settings().embedding); \
assert len(e.embed_query('warm-up')) == e.dimension"; \
    mkdir -p /tmp/warm-up/docs; \
    printf '# Warm-up\n\nThe models are part of the image.\n' > /tmp/warm-up/docs/warm-up.md; \
    citadel --data-dir /tmp/warm-up/data ingest /tmp/warm-up/docs --collection warm-up --quiet; \
    rm -rf /tmp/warm-up

VOLUME /data
EXPOSE 8000

# Liveness only (/healthz): a stopped Ollama means search mode, not an unhealthy Citadel.
# urllib without proxies: a proxy set for the containers must not be asked for 127.0.0.1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:8000/healthz', timeout=4)"]

# No flags: the address and everything else come from CITADEL_* variables (flags would win).
CMD ["citadel", "serve"]
