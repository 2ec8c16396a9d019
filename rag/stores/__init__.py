"""Vector store adapters: Qdrant Edge (embedded, default) and Qdrant server (qdrant-client)."""
