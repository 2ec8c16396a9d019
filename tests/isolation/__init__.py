"""Isolation between teams, probed over real HTTP.

Mallory (team red) sends well over a thousand generated requests to every route of the
server (REST, OpenAI-compatible, signed file links, the web UI's endpoints), with every
parameter pointed at team blue's collection, where documents carrying canary tokens are
planted. Nothing of blue may come back: no chunk, no name, no id, no count, no file, and
no word of it in the prompt the model is given. A foreign id is answered exactly like an
unknown one: each foreign probe has a twin naming a random id of the same shape, and the
two must get the same status and the same body.

Requests go out through http.client with their request-targets written byte for byte
(httpx would normalise `..` away); every response is read to its end, streams included.

The files, in the order a run goes through them:

- world.py: the world. A live server over a real workspace, three users (mallory in red,
  victim in blue, root the administrator), the two collections, blue's documents with
  canaries in their text and names, what victim did over HTTP before the campaign (a job,
  answers, signed links), and every secret of blue's that the checks look for.
- plans.py: the probes. What mallory sends, route by route: blue's ids, names and links,
  altered the ways a lax router or comparison might still accept, each foreign probe with
  a twin naming an unknown value of the same shape; and the ids of victim's open web UI
  tab (session, event, upload), which are victim's alone: 403.
- clients.py: the senders. A raw http.client connection for the HTTP probes, a signed-in
  browser session for the web UI's events; each response is kept whole on its probe.
- conftest.py: the `world` and `campaign` fixtures, each built once for the package.
- detectors.py: the leak detectors. Blue's secrets in a response or a model prompt,
  another team's objects in a successful response, twins that are answered differently.
- test_isolation.py: the verdicts on the campaign, then blue's state after it: documents,
  files, signed links and the audit log.
- test_rate_limits.py: past the per-minute limits, 429 with Retry-After (the web UI's
  upload route too, counted in bytes).
"""
