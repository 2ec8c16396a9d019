"""The HTTP front end (FastAPI), one server for everything:

app       the application: middleware, health probes, API docs, mounting the rest
deps      who is calling (API key, session cookie, or the local administrator)
errors    ONE table: Citadel's errors to REST statuses and OpenAI errors
rest      the REST API at /api
openai    the OpenAI-compatible API at /v1
login     the web login form and logout
files     sending original files (signed links at /files, and the REST API)
guards    body limits and the same-origin rule, before any route runs
incoming  receiving uploaded files as their bytes arrive
wire      the REST API's JSON as pydantic models (also read by the CLI's server client)
"""
