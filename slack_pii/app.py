"""The composition root: `build_app(settings)` wires engine, store, upstream (or the local sink), the Web API
routes, health and metrics into one aiohttp application. No business logic lives here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from slack_pii import messages
from slack_pii.config import LOCAL_UPSTREAM, Settings
from slack_pii.detect.files import FileLimits
from slack_pii.detect.scanner import Scanner
from slack_pii.keys import keys_for
from slack_pii.metrics import Metrics
from slack_pii.reload import ConfigWatcher, ScannerSlot
from slack_pii.scanpool import ScanPool
from slack_pii.services import SERVICES, Services
from slack_pii.slackapp.service import mount_bolt
from slack_pii.store import StoreUnavailable, open_store
from slack_pii.tools.dashboard import add_routes as add_dashboard_routes
from slack_pii.webapi.routes import WebApi
from slack_pii.webapi.sink import LocalSink
from slack_pii.webapi.upstream import Upstream

log = logging.getLogger("slack_pii.app")

UPSTREAM_PROBE = web.AppKey("upstream_probe", dict)  # /readyz caches its upstream check here

def build_app(settings: Settings, *, scanner: Scanner | None = None,
              clock: Callable[[], float] = time.time) -> web.Application:
    """The whole service. `scanner` may be passed in (tests share one); otherwise it is built at start-up.

    Routes are mounted here; the running parts (`Services`) exist from start-up to shutdown, in `app[SERVICES]`.
    """
    metrics = Metrics()
    app = web.Application(client_max_size=max(settings.max_body_bytes, settings.max_upload_bytes),
                          middlewares=[store_unavailable])
    app[UPSTREAM_PROBE] = {}
    WebApi(settings, metrics).add_routes(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    add_dashboard_routes(app, settings)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        keys = keys_for(settings)  # the proxy keeps state: the key is generated into data_dir when not configured
        store = await open_store(settings, clock=clock, at_rest_key=keys.at_rest)
        engine = scanner
        if engine is None:
            from slack_pii.detect.scanner import build_scanner

            engine = await asyncio.get_running_loop().run_in_executor(None, build_scanner, settings, keys)
        sink = None
        api_base, hooks_base = settings.effective_upstream_url, settings.effective_webhook_upstream_url
        if LOCAL_UPSTREAM in (api_base, hooks_base):
            sink = LocalSink(store, keys.fingerprints)
            await sink.start()
            if api_base == LOCAL_UPSTREAM:
                log.warning(messages.LOCAL_SINK_WARNING)
                api_base = sink.api_url
            if hooks_base == LOCAL_UPSTREAM:
                hooks_base = sink.hooks_url
        upstream = Upstream(api_base, hooks_base, timeout_seconds=settings.upstream_timeout_seconds,
                            retries=settings.upstream_retries, metrics=metrics)
        await upstream.start()
        # Hot reload: the slot holds the scanner in force; each request reads it from there.
        slot = ScannerSlot(engine)
        watcher = ConfigWatcher(settings, slot, allow_fingerprints=store.allowed_fingerprints)
        pool = ScanPool(slot, workers=settings.scan_workers, queue_depth=settings.scan_queue_depth,
                        cpu_seconds=settings.scan_cpu_seconds, timeout_seconds=settings.scan_timeout_seconds,
                        metrics=metrics)
        await pool.start()
        file_scans = ThreadPoolExecutor(max_workers=1, thread_name_prefix="file-scan")
        app[SERVICES] = Services(settings=settings, metrics=metrics, keys=keys, store=store, scanner_slot=slot,
                                 upstream=upstream, watcher=watcher, scan_pool=pool,
                                 file_limits=FileLimits.from_settings(settings), file_scans=file_scans, sink=sink)
        await watcher.start(watch=settings.watch_config)
        await store.listen_allow_list(watcher.refresh_allow_list)  # PostgreSQL: NOTIFY from any replica
        try:
            yield
        finally:
            log.info(messages.shutting_down())
            await watcher.stop()
            await pool.close()
            file_scans.shutdown(wait=False, cancel_futures=True)
            await upstream.close()
            if sink is not None:
                await sink.stop()
            await store.close()
            log.info(messages.stopped())

    app.cleanup_ctx.append(lifecycle)
    mount_bolt(app, settings)  # /slack/events and/or Socket Mode, when Slack credentials are set
    return app


def upstream_label(settings: Settings) -> str:
    return "local sink" if settings.uses_local_sink else settings.effective_upstream_url


def webhook_upstream_label(settings: Settings) -> str:
    url = settings.effective_webhook_upstream_url
    return "local sink" if url == LOCAL_UPSTREAM else url


async def healthz(request: web.Request) -> web.Response:
    """The process is up and serving; nothing else is checked (cheap enough for a liveness probe)."""
    return web.json_response({"ok": True, "status": "up"})


UPSTREAM_PROBE_TIMEOUT_SECONDS = 2.0  # a probe slower than this says "not reachable" (readiness probes time out too)
UPSTREAM_PROBE_CACHE_SECONDS = 5.0  # at most one api.test per this many seconds, however often /readyz is polled


async def readyz(request: web.Request) -> web.Response:
    """Ready when start-up has finished (engine loaded), the store answers and the upstream answers (a real
    `api.test`, cached; against the local sink, the sink itself); says which upstream and why not."""
    services = request.app.get(SERVICES)
    if services is None:
        return web.json_response({"ok": False, "checks": {"engine": False, "store": False, "upstream": False}},
                                 status=503)
    settings = services.settings
    upstream = await _upstream_reachable(request.app, services.upstream)
    checks = {"engine": True, "store": bool(services.store.is_open and await services.store.ping()),
              "upstream": upstream["ok"]}
    ready = all(checks.values())
    body = {"ok": ready, "checks": checks, "upstream": upstream_label(settings),
            "webhook_upstream": webhook_upstream_label(settings),
            "config_version": services.scanner_slot.config_version, "config": services.scanner_slot.status(),
            "files": {"ocr": services.file_limits.ocr, "max_bytes": services.file_limits.max_bytes}}
    if not upstream["ok"]:
        body["upstream_problem"] = upstream["problem"]
    if settings.uses_local_sink:
        body["warning"] = messages.LOCAL_SINK_WARNING
    return web.json_response(body, status=200 if ready else 503)


@web.middleware
async def store_unavailable(request: web.Request, handler) -> web.StreamResponse:
    """The database is down or the pool exhausted: a Slack-shaped refusal (503, so Slack and clients retry);
    nothing was forwarded and no held message was taken."""
    try:
        return await handler(request)
    except StoreUnavailable as exc:
        return web.json_response({"ok": False, "error": messages.STORE_UNAVAILABLE_CODE, "detail": str(exc)},
                                 status=503)


async def _upstream_reachable(app: web.Application, upstream: Upstream | None) -> dict:
    """POST api.test on the Web API upstream: any HTTP answer below 500 means it is there. Cached a few seconds."""
    if upstream is None:
        return {"ok": False, "problem": "not started"}
    cached = app[UPSTREAM_PROBE]
    now = time.monotonic()
    if cached and cached["url"] == upstream.api_base and now - cached["at"] < UPSTREAM_PROBE_CACHE_SECONDS:
        return cached
    import aiohttp

    try:
        timeout = aiohttp.ClientTimeout(total=UPSTREAM_PROBE_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.post(upstream.api_url("api.test")) as response:
                result = {"ok": response.status < 500, "problem": f"api.test answered HTTP {response.status}"}
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        result = {"ok": False, "problem": f"api.test failed: {type(exc).__name__}"}
    cached.clear()
    cached.update(result, url=upstream.api_base, at=now)
    return cached


async def metrics_endpoint(request: web.Request) -> web.Response:
    services = request.app.get(SERVICES)
    if services is None:
        return web.Response(status=503, text="metrics: starting up\n")
    if services.store.is_open:
        try:
            services.metrics.held_messages.set(await services.store.count_held())
        except StoreUnavailable:  # the rest of the metrics matter most during a database outage
            pass
    return web.Response(body=services.metrics.render(), headers={"Content-Type": services.metrics.content_type})
