"""Embedding speed on the real chunks of a corpus: sentence-transformers float32 (batch size,
threads, input order), torch dynamic int8, ONNX float32 and ONNX int8 through onnxruntime;
and, for the int8 variants, agreement with float32 and dense retrieval quality.

    python -m bench.embed_speed [--corpus data/bench-corpus]
        [--folder E5_FOLDER] [--sample 384] [--rounds 2]
        [--only NAME,...] [--reference NAME] [--quality] [--out bench/results/embed-speed.json]

Texts: the corpus parsed and chunked by Citadel's own parser processes and `Chunker` (the
`embed_text` of each chunk, "passage: " prompt in front), in ingestion order; cached under
the system's temporary folder (keyed by corpus, folder and chunking version). Speed is
measured on every k-th chunk (`--sample` of them, in their ingestion order, so the length
mix is the corpus's), every variant once per round, rounds interleaved: the machine's other
load hits all variants alike, and the ratios to the reference (`st-b32-t2-pipeline`:
what ingestion does today) are what to read. The load average is recorded with each run.

Input orders: `as-is` (ingestion order, fixed batches: a naive loop), `pipeline` (what
`ingest.pipeline` does: the whole sample sorted by length once, embedded in slices of 64,
each slice one `encode` call), `sorted` (sorted by length once, one call).

`--quality`: every chunk embedded by float32 and by each int8 variant; the handbook's
English and French questions ("query: " prompt) ranked by cosine over those chunks alone
(dense retrieval, no BM25: the part an embedder changes), hit@5 and MRR@10 by document as
`rag.evaluation` counts them, and the cosine between float32 and int8 vectors.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.offline import enforce_offline

PASSAGE = "passage: "
QUERY = "query: "
QA_SETS = (Path("../shared/eval/handbook-qa.jsonl"), Path("bench/eval/handbook-fr-qa.jsonl"))
_SLICE = 64  # ingest.pipeline's _EMBED_SLICE

Encode = Callable[[Sequence[str]], np.ndarray]


# -- the texts ------------------------------------------------------------------------------


def corpus_chunks(corpus: Path, folder: Path) -> list[tuple[str, str]]:
    """(source, embed_text) of every chunk, as ingestion makes them, in ingestion order."""
    from ingest.chunk import CHUNKING_VERSION, Chunker, document_title
    from ingest.discover import discover
    from ingest.workers import ParseJob, ParserPool
    from rag.settings import IngestSettings

    size = IngestSettings().max_chunk_tokens  # ingestion's own cut (the model's window is 512)
    key = hashlib.sha256(
        f"{corpus.resolve()}|{folder.resolve()}|{CHUNKING_VERSION}|{size}".encode()
    )
    cache = Path(tempfile.gettempdir()) / f"citadel-embed-speed-{key.hexdigest()[:16]}.json"
    if cache.is_file():
        return [tuple(c) for c in json.loads(cache.read_text(encoding="utf-8"))]  # type: ignore[misc]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"])

    chunker = Chunker(count, size)
    found = discover([corpus], 50 * 2**20)
    jobs = [ParseJob(i, str(c.path), c.format.name) for i, c in enumerate(found.candidates)]
    parsed: dict[int, Any] = {}
    with ParserPool(2, 120, 1536, {j.file_type for j in jobs}) as pool:
        for outcome in pool.parse_all(jobs):
            parsed[outcome.job.key] = outcome.elements or []
    chunks: list[tuple[str, str]] = []
    for i, candidate in enumerate(found.candidates):
        elements = parsed[i]
        fmt = candidate.format.name
        title = document_title(elements, fmt, Path(candidate.source).stem.replace("_", " "))
        chunks += [(candidate.source, d.embed_text) for d in chunker.chunk(elements, fmt, title)]
    cache.write_text(json.dumps(chunks), encoding="utf-8")
    return chunks


# -- the variants ---------------------------------------------------------------------------


def st_model(folder: Path, int8: bool = False) -> Any:
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    if int8:
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    return model


def st_encoder(model: Any, threads: int, batch_size: int) -> Encode:
    import torch

    def encode(texts: Sequence[str]) -> np.ndarray:
        torch.set_num_threads(threads)
        return np.asarray(
            model.encode(
                list(texts),
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        )

    return encode


def ort_encoder(path: Path, folder: Path, threads: int, batch_size: int) -> Encode:
    from rag.adapters.onnx_embedder import OnnxSession

    session = OnnxSession(path, folder, threads)

    def encode(texts: Sequence[str]) -> np.ndarray:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), session.dimension), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            part = order[start : start + batch_size]
            out[part] = session.embed([texts[i] for i in part])
        return out

    return encode


def ordered(encode: Encode, order: str, batch_size: int) -> Encode:
    """`encode` fed as ingestion (or a naive loop, or one sorted call) would feed it."""

    def as_is(texts: Sequence[str]) -> np.ndarray:
        return np.concatenate(
            [encode(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
        )

    def pipeline(texts: Sequence[str]) -> np.ndarray:
        idx = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), 0), dtype=np.float32)
        parts = []
        for start in range(0, len(idx), _SLICE):
            part = idx[start : start + _SLICE]
            parts.append((part, encode([texts[i] for i in part])))
        out = np.zeros((len(texts), parts[0][1].shape[1]), dtype=np.float32)
        for part, vectors in parts:
            out[part] = vectors
        return out

    def one_sorted(texts: Sequence[str]) -> np.ndarray:
        idx = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = encode([texts[i] for i in idx])
        result = np.zeros_like(out)
        result[idx] = out
        return result

    return {"as-is": as_is, "pipeline": pipeline, "sorted": one_sorted}[order]


def onnx_files(folder: Path, scratch: Path) -> dict[str, Path]:
    """float32 and int8 ONNX files of `folder`, exported into `scratch` (kept across runs)."""
    from rag import e5_onnx

    scratch.mkdir(parents=True, exist_ok=True)
    files = {
        "fp32": scratch / "model.onnx",
        "int8": scratch / "model-int8.onnx",  # what `rag.e5_onnx` makes is "fused-int8"
        "fused-fp32": scratch / "opt.onnx",
        "fused-int8": scratch / "opt-int8.onnx",
    }
    if not files["fp32"].is_file():
        e5_onnx.export_fp32(folder, files["fp32"])
    if not files["int8"].is_file():
        e5_onnx.quantize_int8(files["fp32"], files["int8"])
    if not files["fused-fp32"].is_file():
        e5_onnx.fuse(folder, files["fp32"], files["fused-fp32"])
    if not files["fused-int8"].is_file():
        e5_onnx.quantize_int8(files["fused-fp32"], files["fused-int8"])
    return files


def variants(folder: Path, scratch: Path, only: set[str] | None) -> dict[str, Callable[[], Encode]]:
    """name -> builder (models are loaded once, lazily, and shared)."""
    loaded: dict[str, Any] = {}

    def model(kind: str) -> Any:
        if kind not in loaded:
            loaded[kind] = st_model(folder, int8=kind == "int8")
        return loaded[kind]

    files: dict[str, Path] = {}

    def onnx(kind: str) -> Path:
        if not files:
            files.update(onnx_files(folder, scratch))
        return files[kind]

    out: dict[str, Callable[[], Encode]] = {}
    for bs in (16, 32, 64):
        for threads in (1, 2):
            for order in ("as-is", "pipeline", "sorted"):
                if order != "pipeline" and (bs, threads) != (32, 2):
                    continue
                name = f"st-b{bs}-t{threads}-{order}"
                out[name] = lambda bs=bs, t=threads, o=order: ordered(
                    st_encoder(model("fp32"), t, bs), o, bs
                )
    for threads in (1, 2):
        out[f"st-int8-b32-t{threads}-pipeline"] = lambda t=threads: ordered(
            st_encoder(model("int8"), t, 32), "pipeline", 32
        )
        for kind in ("fp32", "int8", "fused-fp32", "fused-int8"):
            for bs in (16, 32):
                out[f"onnx-{kind}-b{bs}-t{threads}-pipeline"] = lambda k=kind, t=threads, bs=bs: (
                    ordered(ort_encoder(onnx(k), folder, t, bs), "pipeline", bs)
                )
    if only:
        out = {k: v for k, v in out.items() if any(o in k for o in only)}
    return out


# -- measuring ------------------------------------------------------------------------------


def speed(
    encoders: dict[str, Encode], texts: list[str], rounds: int
) -> dict[str, dict[str, float]]:
    for encode in encoders.values():
        encode(texts[:8])  # warm-up: first calls pay one-off costs
    seconds: dict[str, list[float]] = {name: [] for name in encoders}
    cpu: dict[str, list[float]] = {name: [] for name in encoders}
    loads: list[float] = []
    for r in range(rounds):
        names = list(encoders) if r % 2 == 0 else list(reversed(encoders))
        for name in names:
            loads.append(os.getloadavg()[0])
            t0, c0 = time.perf_counter(), time.process_time()
            encoders[name](texts)
            seconds[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
            print(
                f"  round {r + 1} {name}: {len(texts) / seconds[name][-1]:.1f} chunks/s, "
                f"{1000 * cpu[name][-1] / len(texts):.0f} CPU ms/chunk, load {loads[-1]:.1f}",
                flush=True,
            )
    return {
        name: {
            "chunks_per_s": round(len(texts) / min(s), 2),
            "median_chunks_per_s": round(len(texts) / statistics.median(s), 2),
            "cpu_ms_per_chunk": round(1000 * min(cpu[name]) / len(texts), 1),
        }
        for name, s in seconds.items()
    } | {"_load_average": {"mean": round(statistics.mean(loads), 2), "max": max(loads)}}


def _retrieval(
    chunk_vectors: np.ndarray, sources: list[str], queries: np.ndarray, qa: list[dict[str, Any]]
) -> dict[str, float]:
    scores = queries @ chunk_vectors.T
    hits, rrs = [], []
    for row, item in zip(scores, qa, strict=True):
        ranked = list(dict.fromkeys(sources[i] for i in np.argsort(-row)[:200]))
        expected = set(item["sources"])
        hits.append(float(bool(expected & set(ranked[:5]))))
        rank = next((n for n, s in enumerate(ranked[:10], 1) if s in expected), None)
        rrs.append(1 / rank if rank else 0.0)
    return {
        "hit@5": round(100 * statistics.mean(hits), 1),
        "mrr@10": round(100 * statistics.mean(rrs), 1),
    }


def quality(
    builders: dict[str, Callable[[], Encode]], chunks: list[tuple[str, str]], cache: Path
) -> dict[str, Any]:
    texts = [PASSAGE + t for _, t in chunks]
    sources = [s for s, _ in chunks]
    sets = {
        p.name: [json.loads(x) for x in p.read_text().splitlines() if x.strip()] for p in QA_SETS
    }
    sets = {k: [q for q in v if q["sources"]] for k, v in sets.items()}
    result: dict[str, Any] = {"chunks": len(texts)}
    reference: dict[str, np.ndarray] = {}
    for name, build in builders.items():
        encode = build()
        saved = cache / f"vectors-{name}-{len(texts)}.npy"  # the slow part, kept for re-runs
        t0 = time.perf_counter()
        vectors = np.load(saved) if saved.is_file() else encode(texts)
        np.save(saved, vectors)
        row: dict[str, Any] = {"seconds_all_chunks": round(time.perf_counter() - t0, 1)}
        for set_name, qa in sets.items():
            queries = encode([QUERY + q["question"] for q in qa])
            row[set_name] = _retrieval(vectors, sources, queries, qa)
            reference.setdefault(f"q-{set_name}", queries)
            if name != next(iter(builders)):
                row[set_name]["query_cosine_min"] = round(
                    float(np.min(np.sum(queries * reference[f"q-{set_name}"], axis=1))), 4
                )
        if "chunks" not in reference:
            reference["chunks"] = vectors
        else:
            cos = np.sum(vectors * reference["chunks"], axis=1)
            row["cosine_to_fp32"] = {
                "mean": round(float(cos.mean()), 4),
                "min": round(float(cos.min()), 4),
                "p01": round(float(np.percentile(cos, 1)), 4),
            }
        result[name] = row
        print(json.dumps({name: row}), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("data/bench-corpus"))
    parser.add_argument("--folder", type=Path, default=None, help="default: the installed e5")
    parser.add_argument("--sample", type=int, default=384)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", default="", help="comma-separated substrings of variant names")
    parser.add_argument("--quality", action="store_true")
    parser.add_argument(
        "--reference", default="st-b32-t2-pipeline", help="the variant ratios are taken to"
    )
    parser.add_argument(
        "--scratch", type=Path, default=Path(tempfile.gettempdir()) / "citadel-e5-onnx"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/embed-speed.json"))
    args = parser.parse_args()
    enforce_offline()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if args.folder is None:
        from rag.e5_convert import installed_folder

        args.folder = installed_folder()
    chunks = corpus_chunks(args.corpus, args.folder)
    only = {o for o in args.only.split(",") if o} or None
    builders = variants(args.folder, args.scratch, only)
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "corpus": {"path": str(args.corpus), "chunks": len(chunks)},
    }
    if args.quality:
        result["quality"] = quality(builders, chunks, args.scratch)
    else:
        step = max(1, len(chunks) // args.sample)
        texts = [PASSAGE + t for _, t in chunks[::step][: args.sample]]
        result["sample"] = {"chunks": len(texts), "every": step}
        encoders = {name: build() for name, build in builders.items()}
        result["speed"] = speed(encoders, texts, args.rounds)
        ref = result["speed"].get(args.reference)
        if ref:
            for name, row in result["speed"].items():
                if not name.startswith("_"):
                    row["ratio"] = round(row["chunks_per_s"] / ref["chunks_per_s"], 2)
                    row["cpu_ratio"] = round(ref["cpu_ms_per_chunk"] / row["cpu_ms_per_chunk"], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
