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
from slack_pii.store import BaseStore, StoreUnavailable, open_store
from slack_pii.webapi.upstream import Upstream
from slack_pii.webapi.routes import WebApi

log = logging.getLogger("slack_pii.app")

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
WEBAPI = web.AppKey("webapi", WebApi)
STORE = web.AppKey("store", BaseStore)
UPSTREAM = web.AppKey("upstream", Upstream)
SINK = web.AppKey("sink", object)


def build_app(settings: Settings, *, scanner=None, clock: Callable[[], float] = time.time) -> web.Application:
    """The whole service. `scanner` may be passed in (tests share one); otherwise it is built at start-up."""
    metrics = Metrics()
    webapi = WebApi(settings, metrics)
    app = web.Application(client_max_size=max(settings.max_body_bytes, settings.max_upload_bytes),
                          middlewares=[store_unavailable])
    app[SETTINGS], app[METRICS], app[WEBAPI] = settings, metrics, webapi
    webapi.add_routes(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    add_dashboard_routes(app, settings)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        store = await open_store(settings, clock=clock)
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
        await store.listen_allow_list(watcher.refresh_allow_list)  # PostgreSQL: NOTIFY from any replica
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


async def readyz(request: web.Request) -> web.Response:
    """Ready when the engine is loaded, the store open and an upstream configured; says which upstream."""
    app = request.app
    settings, webapi = app[SETTINGS], app[WEBAPI]
    store = app.get(STORE)
    checks = {"engine": webapi.scanner is not None, "store": bool(store and store.is_open and await store.ping()),
              "upstream": webapi.upstream is not None}
    ready = all(checks.values())
    body = {"ok": ready, "checks": checks, "upstream": upstream_label(settings),
            "webhook_upstream": webhook_upstream_label(settings),
            "config_version": getattr(webapi.scanner, "config_version", None),
            "files": {"ocr": webapi.files.limits.ocr, "max_bytes": webapi.files.limits.max_bytes}}
    if SCANNER_SLOT in app:
        body["config"] = app[SCANNER_SLOT].status()
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


async def metrics_endpoint(request: web.Request) -> web.Response:
    metrics, store = request.app[METRICS], request.app.get(STORE)
    if store is not None and store.is_open:
        try:
            metrics.held_messages.set(await store.count_held())
        except StoreUnavailable:  # the rest of the metrics matter most during a database outage
            pass
    return web.Response(body=metrics.render(), headers={"Content-Type": metrics.content_type})
