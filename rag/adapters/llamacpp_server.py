"""The embedded model server's own process: llama.cpp's server (the `xllamacpp` package)
serving one GGUF file on a loopback port, until its parent closes the pipe on standard
input (or dies, which closes it too).

Started by rag/adapters/llamacpp.py as `python -m rag.adapters.llamacpp_server ...`; it
prints `ready` on standard output once the model is loaded and the port listens.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time

LISTEN_WAIT_S = 30.0  # after the model is loaded: the HTTP thread binds the port soon after


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="The GGUF file.")
    parser.add_argument("--alias", required=True, help="The model's id in the API.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ctx", type=int, required=True, help="Context size, in tokens.")
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args(argv)

    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.model_alias = {args.alias}
    params.hostnames = ["127.0.0.1"]  # loopback only: Citadel is its one client
    params.port = args.port
    params.n_ctx = args.ctx
    params.n_parallel = 1  # one answer at a time: a second would halve the speed of both
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.endpoint_props = True  # the context length, read by the adapter
    params.endpoint_slots = False  # nothing about the prompts being processed
    params.ui = False  # no web page of its own
    params.api_keys = [os.environ["CITADEL_LLAMACPP_API_KEY"]]  # Citadel only
    params.cache_prompt = True  # the system prompt is read once, not on every question
    params.cache_ram_mib = 256  # prompt cache in RAM: bounded (llama.cpp's default is 8 GiB)
    server = xllamacpp.Server(params)
    # The server's HTTP thread may not listen yet when the constructor returns (seen on a
    # busy machine: the first request after a restart was refused). "ready" means it does.
    if not _listening(args.port, LISTEN_WAIT_S):
        print(f"llama.cpp's server is not listening on 127.0.0.1:{args.port}", file=sys.stderr)
        sys.exit(1)
    print("ready", flush=True)
    sys.stdin.read()  # until the parent closes the pipe
    del server


def _listening(port: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


if __name__ == "__main__":
    main()
