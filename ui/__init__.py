"""Everything a person or a program talks to: one service, three front ends.

    cli  →  http  →  web  →  service  →  metadata        (imports point this way only)

    service/    the use cases: the permission-and-audit facade (Workspace) every front end
                goes through; imports no web, CLI or terminal framework
    metadata/   SQLite: accounts, teams, keys, audit log, catalog, feedback, failures
    http/       FastAPI: the REST API, the OpenAI-compatible /v1, login, files, guards, and
                the one table of errors to HTTP statuses
    web/        Gradio: the web UI's layout, its handlers, its HTML
    cli/        Typer: the `citadel` command, on the data directory or through a server

The front ends translate; they never decide who may see what (ui/service/access.py does,
and the store query applies it).
"""
