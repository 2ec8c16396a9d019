"""The isolation campaign's fixtures, shared by the package's test modules.

`world` sets up the two teams on a live server (world.py). `campaign` opens victim's web
UI tab (whose ids mallory then tries), plans every probe (plans.py), sends them
(clients.py) noting the model prompts each one caused, then drives the web UI. Both are
package-scoped: built once, for the first test that needs them, and torn down after the
package's last test.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.isolation.clients import Campaign, Wire, open_victim_tab, run_gradio
from tests.isolation.plans import (
    Plan,
    plan_admin_routes,
    plan_collection_routes,
    plan_document_routes,
    plan_file_links,
    plan_folder_routes,
    plan_gradio_anonymous,
    plan_gradio_sessions,
    plan_jobs_and_feedback,
    plan_library_queries,
    plan_mcp,
    plan_openai,
    plan_search_and_ask,
    plan_unauthenticated,
)
from tests.isolation.world import World, open_world


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[World]:
    with open_world(tmp_path_factory.mktemp("isolation"), embedder) as built:
        yield built


@pytest.fixture(scope="package")
def campaign(world: World) -> Campaign:
    victim_tab = open_victim_tab(world)
    plan = Plan(world.keys["mallory"], world.cookie)
    for build in (
        plan_document_routes,
        plan_collection_routes,
        plan_library_queries,
        plan_jobs_and_feedback,
        plan_search_and_ask,
        plan_openai,
        plan_mcp,
        plan_file_links,
        plan_admin_routes,
        plan_folder_routes,
        plan_unauthenticated,
        plan_gradio_anonymous,
        plan_gradio_sessions,
    ):
        build(plan, world)
    started = time.monotonic()
    wire = Wire(world.server.port)
    try:
        for probe in plan.probes:
            before = len(world.fake.requests)
            wire.send(probe)
            probe.prompts = list(world.fake.requests[before:])
    finally:
        wire.close()
        victim_tab.close()
    probes = list(plan.probes)
    run_gradio(world, probes, itertools.count(10**6))
    return Campaign(probes, time.monotonic() - started)
