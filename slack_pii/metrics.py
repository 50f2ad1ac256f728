"""Prometheus metrics, one registry per app (so tests and several apps in one process never collide).

Labels are bounded sets: scanned method names (everything else is `other`), actions, entity types from the rule
set, upstream error kinds. No label ever carries request content.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("slack_pii_requests", "Requests handled, by Web API method and action taken",
                                ["method", "action"], registry=self.registry)
        self.findings = Counter("slack_pii_findings", "Findings acted on (not allowed), by entity type",
                                ["entity_type"], registry=self.registry)
        self.scan_seconds = Histogram("slack_pii_scan_seconds", "Time to scan one request",
                                      buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5),
                                      registry=self.registry)
        self.upstream_errors = Counter("slack_pii_upstream_errors", "Upstream failures, by kind "
                                       "(timeout, connection, disconnected, status_429, status_5xx)",
                                       ["kind"], registry=self.registry)
        self.scan_refused = Counter("slack_pii_scan_refused", "Scans refused before they started, by reason "
                                    "(busy: every scan worker taken and the queue full)", ["reason"],
                                    registry=self.registry)
        self.scan_workers_replaced = Counter("slack_pii_scan_workers_replaced", "Scan workers killed and replaced, "
                                             "by reason (cpu_budget, timeout, worker_died, reload)", ["reason"],
                                             registry=self.registry)
        self.held_messages = Gauge("slack_pii_held_messages", "Originals currently held encrypted",
                                   registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
