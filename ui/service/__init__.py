"""The application service: the use cases every front end goes through.

    workspace   the permission-and-audit facade: collections, search, ask, documents, files,
                uploads, feedback, administration, health (start here)
    access      who may read which collection (the isolation rule), the admin check
    ingestion   uploads, background jobs, re-ingest, delete, recording outcomes
    jobs        the ingestion job queue and its per-file progress
    uploads     the checks of an uploaded file (name, size, type by content)
    links       signed links that open a cited file for one user
    sessions    signed browser sessions
    sources     which sources go with an answer (shown, audited)
    library     a collection's documents as people browse them
    limits      rate limits and request-size limits
    health      readiness of the store, the embedder and the model server
    errors      the server's errors, and the whole error tree

It imports no web, CLI or terminal framework (tests/test_architecture.py holds that).
"""
