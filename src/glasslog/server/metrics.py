"""Prometheus metrics of one server (``GET /metrics``), in the text exposition format.

Each server has its own registry, so that two in one process (the tests) do not mix
their figures. Gauges that describe state (queue depth, tree size, seconds since the
last checkpoint) are read when scraped, not kept up to date on every change.
"""

from __future__ import annotations

import time
from typing import Final, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)


class _Writer(Protocol):
    @property
    def depth(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def last_signed(self) -> float: ...


class _Hub(Protocol):
    @property
    def streams(self) -> int: ...


class Measured(Protocol):
    """What the gauges read: a running service's writer and tail hub (a Protocol, so
    that this module does not import the service that imports it)."""

    @property
    def writer(self) -> _Writer: ...
    @property
    def hub(self) -> _Hub: ...


__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

_QUERY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """The figures the issue names: ingest, queue, tree, checkpoints, queries, tails."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.ingested = Counter(
            "glasslog_events_ingested", "Events stored by this server's writer",
            registry=self.registry,
        )  # fmt: skip
        self.batch_seconds = Histogram(
            "glasslog_ingest_batch_seconds", "Seconds to prepare and commit one write batch",
            registry=self.registry,
        )  # fmt: skip
        self.queue_depth = Gauge(
            "glasslog_write_queue_depth", "Events waiting for the writer", registry=self.registry
        )
        self.tree_size = Gauge(
            "glasslog_tree_size", "Leaves in the log's tree, as this server last wrote it",
            registry=self.registry,
        )  # fmt: skip
        self.since_checkpoint = Gauge(
            "glasslog_seconds_since_checkpoint",
            "Seconds since this server last saw a checkpoint signed",
            registry=self.registry,
        )
        self.query_seconds = Histogram(
            "glasslog_query_seconds", "Seconds per read, by operation", ["operation"],
            buckets=_QUERY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.tails = Gauge(
            "glasslog_tail_streams", "Open live-tail streams", registry=self.registry
        )
        self.syslog_messages = Counter(
            "glasslog_syslog_messages", "Syslog messages received, by what became of them "
            "(stored, duplicate, malformed, refused, dropped, denied)", ["outcome"],
            registry=self.registry,
        )  # fmt: skip

    def bind(self, service: Measured) -> None:
        """Read the state gauges from ``service`` when scraped."""
        writer = service.writer
        self.queue_depth.set_function(lambda: writer.depth)
        self.tree_size.set_function(lambda: writer.size)
        self.since_checkpoint.set_function(lambda: max(0.0, time.time() - writer.last_signed))
        self.tails.set_function(lambda: service.hub.streams)

    def batch_written(self, events: int, seconds: float) -> None:
        self.ingested.inc(events)
        self.batch_seconds.observe(seconds)

    def syslog_message(self, outcome: str) -> None:
        self.syslog_messages.labels(outcome).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
