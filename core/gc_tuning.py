"""The cyclic garbage collector, tuned for a server (see bench/RESULTS.md).

A GraphQL request leaves a few hundred short-lived cyclic objects (graphql-core's
paths and infos, asyncio tasks and futures, SQLAlchemy's statement machinery): with
Python's default gen-0 threshold (700) a collection runs every few requests, and a full
one walks every object the app imported (pauses of ~100 ms+ at the tail). After start-up
the long-lived objects are frozen out of the collector's view, and gen 0 runs less often.
"""

from __future__ import annotations

import gc


def tune_garbage_collector(gen0_threshold: int) -> None:
    """Call once the app is built: what exists now lives as long as the process."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)
