"""Load on the team server over real HTTP: how many users can one (2-core) box serve?

    python -m bench.server [--corpus PATH | --data DIR] [--collection NAME]
                           [--seconds 20] [--concurrency 1,4,16] [--endpoints search,ask,stream]
                           [--questions FILE] [--tokens 60] [--token-ms 20]
                           [--out bench/results/server.json] [--keep]

Set-up, all under a fresh temporary directory (removed at the end unless --keep):

1. the data directory: a copy of `--data DIR` (an already-ingested one; the copy means
   the bench never writes into it), or `citadel ingest` of `--corpus` (default: the bundled
   `samples/`) into collection `--collection`;
2. an administrator `bench` and an API key, made with `citadel users add/key`;
3. the server as a subprocess, `python -m ui --data-dir DIR serve --port P`, with
   authentication on (the default) and OPENBLAS_NUM_THREADS=1: the load generator does not
   share its GIL or its cores' scheduling with it. CITADEL_SERVER__REQUESTS_PER_MINUTE is
   raised to 1,000,000, or the per-user limit (120/min) would answer 429s to the load.

Endpoints, each at every concurrency level for `--seconds` (closed loop: each of the C
clients sends its next question as soon as it has the previous answer):

- `search`: `POST /api/search` (retrieval only);
- `ask`: `POST /api/ask`, not streamed, in search mode: the model server's address is a
  closed port, so each answer is retrieval plus a refused connection, then the passages;
- `stream`: `POST /v1/chat/completions` with `stream: true`, against a fake Ollama
  (tests/fake_ollama.py, in its own process) that streams `--tokens` tokens at `--token-ms`
  per token, an answer with citation markers: the generation time is the fake's, the rest
  (retrieval, prompt, streaming, checking the citations) is the server's. A second server
  process is started for this, pointed at the fake.

Measured per level: requests, errors, throughput, latency percentiles (client side, whole
response), for streams the time to the first byte and to the first content token; the
latency of a `/healthz` probe sent every 0.2 s alongside the load (a stalled event loop or
a full thread pool shows there); the CPU used by the server, this load generator, the fake
model and the whole machine (cores: 1.0 = one core busy); the server's RSS at the end and
its peak. Questions: `--questions` (JSON lines with a "question" field, or one per line);
by default ../shared/eval/handbook-qa.jsonl for a collection named `handbook`, else ~20
questions about the samples.

Modules: `__main__` (the command line and the run), `harness` (the data directory, the
server and fake model processes), `workload` (the questions, the requests and how they are
timed), `report` (aggregation, the table and the JSON file).
"""
