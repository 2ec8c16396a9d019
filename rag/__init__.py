"""Citadel's core: settings, types, ports, embeddings and vector stores.

`rag` imports neither `ingest` nor `ui`; they build on it.
"""
