"""Citadel's promises tested with faults: `make proof` (python -m bench.proof).

    python -m bench.proof [--parts crash,metadata,hostile,egress,load]
                          [--corpus data/bench-corpus] [--kills 25,10,15]
                          [--metadata-kills 50] [--users 50] [--seconds 300] [--seed 7]

Each part writes its figures to `bench/proof/results/PART.json` as it ends (committed: the
evidence); the report, `bench/PROOF.md`, is rebuilt from every part's latest results, with
the machine and the command of each (a part with no results keeps its section of the
report). Parts:

- `crash`: ingestion, replacement (`--prune`) and re-indexing SIGKILLed at random moments,
  each compared point by point with a clean run (bench/proof/crash.py);
- `metadata`: the metadata database under the same kills: no committed entry lost;
- `egress`: ingestion, questions to the embedded model, the server and its web UI in
  Chromium under an audit hook that fails any connection leaving loopback, and, where the
  machine allows it, inside a network namespace with no route out (bench/proof/egress.py);
- `hostile`: 92 kinds of hostile files through the CLI and the upload API, and injection
  documents against the real model's answers (bench/proof/hostile.py);
- `load`: 50 simulated users for 5 minutes at the default limits, the model stand-in
  streaming at a fixed rate, one Chromium session asking through the web UI meanwhile
  (bench/proof/load.py).
"""
