"""Vector stores on Qdrant: Qdrant Edge (embedded, the default) and a Qdrant server
(qdrant-client), sharing one collection layout (base.py) and one contract test suite."""
