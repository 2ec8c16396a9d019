"""Citadel's promises tested with faults: `make proof` (python -m bench.proof).

    python -m bench.proof [--parts crash,metadata,egress] [--corpus data/bench-corpus]
                          [--kills 25,10,15] [--metadata-kills 50] [--seed 7]

Each part writes its figures to `bench/results/proof-PART.json` as it ends; the report,
`bench/PROOF.md`, is rebuilt from every part's latest results, with the machine and the
command of each. Parts:

- `crash`: ingestion, replacement (`--prune`) and re-indexing SIGKILLed at random moments,
  each compared point by point with a clean run (bench/proof/crash.py);
- `metadata`: the metadata database under the same kills: no committed entry lost;
- `egress`: ingestion, questions to the embedded model, the server and its web UI in
  Chromium under an audit hook that fails any connection leaving loopback, and, where the
  machine allows it, inside a network namespace with no route out (bench/proof/egress.py).
"""
