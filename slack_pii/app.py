"""The composition root: `build_app(settings)` wires engine, store, upstream (or the local sink), the Web API
routes, health and metrics into one aiohttp application. No business logic lives here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from slack_pii import messages
from slack_pii.slackapp.service import mount_bolt
from slack_pii.config import LOCAL_UPSTREAM, Settings
from slack_pii.tools.dashboard import add_routes as add_dashboard_routes
from slack_pii.metrics import Metrics
from slack_pii.reload import CONFIG_WATCHER, SCANNER_SLOT, ConfigWatcher, ScannerSlot
from slack_pii.webapi.sink import LocalSink
from slack_pii.store.sqlite import Store
from slack_pii.webapi.upstream import Upstream
from slack_pii.webapi.routes import WebApi

log = logging.getLogger("slack_pii.app")

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
WEBAPI = web.AppKey("webapi", WebApi)
STORE = web.AppKey("store", Store)
UPSTREAM = web.AppKey("upstream", Upstream)
SINK = web.AppKey("sink", object)
UPSTREAM_PROBE = web.AppKey("upstream_probe", dict)


def build_app(settings: Settings, *, scanner=None, clock: Callable[[], float] = time.time) -> web.Application:
    """The whole service. `scanner` may be passed in (tests share one); otherwise it is built at start-up."""
    metrics = Metrics()
    webapi = WebApi(settings, metrics)
    app = web.Application(client_max_size=max(settings.max_body_bytes, settings.max_upload_bytes))
    app[SETTINGS], app[METRICS], app[WEBAPI] = settings, metrics, webapi
    app[UPSTREAM_PROBE] = {}  # /readyz caches its upstream check here
    webapi.add_routes(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    add_dashboard_routes(app, settings)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        store = await Store.open(settings.database_path, settings.key_bytes(), clock=clock,
                                 hold_ttl_seconds=settings.hold_ttl_seconds)
        app[STORE] = store
        engine = scanner
        if engine is None:
            from slack_pii.detect.scanner import build_scanner

            engine = await asyncio.get_running_loop().run_in_executor(None, build_scanner, settings)
        sink = None
        api_base, hooks_base = settings.effective_upstream_url, settings.effective_webhook_upstream_url
        if LOCAL_UPSTREAM in (api_base, hooks_base):
            sink = LocalSink(store, settings.key_bytes())
            await sink.start()
            if api_base == LOCAL_UPSTREAM:
                log.warning(messages.LOCAL_SINK_WARNING)
                api_base = sink.api_url
            if hooks_base == LOCAL_UPSTREAM:
                hooks_base = sink.hooks_url
        app[SINK] = sink
        upstream = Upstream(api_base, hooks_base, timeout_seconds=settings.upstream_timeout_seconds,
                            retries=settings.upstream_retries, metrics=metrics)
        await upstream.start()
        app[UPSTREAM] = upstream
        webapi.bind(engine, store, upstream)
        # Hot reload: the slot holds the scanner in force; each swap (reload, feedback allow-list) rebinds it.
        slot = ScannerSlot(engine)
        slot.listeners.append(lambda new: setattr(webapi, "scanner", new))
        watcher = ConfigWatcher(settings, slot, allow_fingerprints=store.allowed_fingerprints)
        app[SCANNER_SLOT], app[CONFIG_WATCHER] = slot, watcher
        await watcher.start(watch=settings.watch_config)
        try:
            yield
        finally:
            log.info(messages.shutting_down())
            await watcher.stop()
            await upstream.close()
            if sink is not None:
                await sink.stop()
            webapi.executor.shutdown(wait=False, cancel_futures=True)
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
    """Ready when the engine is loaded, the store open and the upstream answers (a real `api.test`, cached; against
    the local sink, the sink itself); says which upstream and why not."""
    app = request.app
    settings, webapi = app[SETTINGS], app[WEBAPI]
    store = app.get(STORE)
    upstream = await _upstream_reachable(app, webapi.upstream)
    checks = {"engine": webapi.scanner is not None, "store": bool(store and store.is_open),
              "upstream": upstream["ok"]}
    ready = all(checks.values())
    body = {"ok": ready, "checks": checks, "upstream": upstream_label(settings),
            "webhook_upstream": webhook_upstream_label(settings),
            "config_version": getattr(webapi.scanner, "config_version", None)}
    if not upstream["ok"]:
        body["upstream_problem"] = upstream["problem"]
    if SCANNER_SLOT in app:
        body["config"] = app[SCANNER_SLOT].status()
    if settings.uses_local_sink:
        body["warning"] = messages.LOCAL_SINK_WARNING
    return web.json_response(body, status=200 if ready else 503)


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
    metrics, store = request.app[METRICS], request.app.get(STORE)
    if store is not None and store.is_open:
        metrics.held_messages.set(await store.count_held())
    return web.Response(body=metrics.render(), headers={"Content-Type": metrics.content_type})
