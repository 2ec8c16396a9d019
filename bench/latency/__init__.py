"""Retrieval latency at scale: question in, ranked passages out (no LLM), on Qdrant Edge.

    python -m bench.latency [--sizes 2000,100000,1000000] [--queries 200] [--data DIR]
                            [--out bench/results/latency.json] [--index plain,optimized]
                            [--torch-threads 1,default]

For each size N:

1. build (or reuse, when `DIR/<N>` already holds the same N chunks) an EdgeStore collection
   of N synthetic chunks: clustered unit dense vectors (1,000 centroids + noise, one
   centroid per document), BM25 sparse vectors of text drawn from a Zipf-distributed
   vocabulary (real English words from the packaged model's vocabulary first, then
   made-up words), payloads from `DocumentRecord.chunk` over ~N/20 documents;
2. `plain`: measure the store as ingestion leaves it (Qdrant Edge runs no background
   optimizer, so everything sits in one appendable segment: exact dense search);
3. `optimized`: a copy at `DIR/<N>-optimized` on which `EdgeShard.optimize()` has run
   (HNSW index, immutable sparse index), measured the same way.

Each measurement runs in a fresh process (clean RSS) with the real Retriever: the packaged
sentence-transformers embedder, Bm25Encoder and default RetrievalSettings; once with torch
limited to one thread and once with torch's default. Besides `Retrieval.latency_ms` it
times the embedding of the question alone and the dense and sparse store searches alone.

Modules: `__main__` (the command line and the run), `harness` (the synthetic corpus, the
stores built, optimized and cached under DIR, the fresh processes), `workload` (the
questions and the timed retrieval), `report` (percentiles, the table and the JSON file).
"""
