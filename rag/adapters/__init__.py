"""The only modules that import an engine: sentence-transformers (embedder, reranker), the
ollama client (generator) and Qdrant (Edge and server stores). Each translates its library's
errors into Citadel's (rag/errors.py) and implements a port of rag/ports.py."""
