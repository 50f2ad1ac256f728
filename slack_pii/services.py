"""The running parts every feature uses, built once by the composition root (`slack_pii.app`) at start-up.

The Web API routes, the Bolt app and the dashboard read `request.app[SERVICES]` (or are handed the object)
instead of importing the composition root back. Everything here is started and open for as long as the object
is reachable from the app; the scanner in force is read from `scanner_slot` per request (hot reload swaps it).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from slack_pii.config import Settings
from slack_pii.keys import Keys
from slack_pii.metrics import Metrics
from slack_pii.reload import ConfigWatcher, ScannerSlot
from slack_pii.scanpool import ScanPool
from slack_pii.detect.files import FileLimits
from slack_pii.store import BaseStore
from slack_pii.webapi.upstream import Upstream

if TYPE_CHECKING:
    from slack_pii.webapi.sink import LocalSink


@dataclass(frozen=True)
class Services:
    """What a request handler may use. `sink` is the built-in local sink when the upstream is `local`."""

    settings: Settings
    metrics: Metrics
    keys: Keys
    store: BaseStore
    scanner_slot: ScannerSlot
    upstream: Upstream
    watcher: ConfigWatcher
    scan_pool: ScanPool
    file_limits: FileLimits
    file_scans: ThreadPoolExecutor  # one thread: file scans run in this process, off the loop, one at a time
    sink: LocalSink | None = None


SERVICES = web.AppKey("services", Services)
