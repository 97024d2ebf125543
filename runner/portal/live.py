"""Live progress: a run's events as server-sent events (text/event-stream).

The stream reads the run directory's events.jsonl as the engine appends to it, so it shows
any run: one the portal started on its own threads, one a worker elsewhere writes into the
same state folder, or one started with `psrunner run` at a terminal. Each event goes out with
its sequence number as the SSE id, so a browser that reconnects (Last-Event-ID) gets only what
it missed; the stream ends after `run.end`. What is sent is a small, fixed set of fields,
already redacted by the run directory's writer."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..render_text import label
from ..results import Status
from ..rundir import RunDir
from .app import Portal, signed_in

POLL = 0.2               # seconds between looks at the events file
KEEPALIVE = 15.0         # a comment line this often, so proxies keep the connection
LONGEST = 3 * 60 * 60    # a stream ends after this long; the browser reconnects where it was


def sse(event: dict[str, Any], mode: str) -> str:
    data = event.get("data") or {}
    out: dict[str, Any] = {"seq": event["seq"], "type": event["type"], "stage": event.get("stage")}
    if event["type"] == "stage.start":
        out["title"] = data.get("title")
    elif event["type"] == "stage.end":
        status = str(data.get("status", ""))
        out.update(status=status, label=label(mode, Status(status)) if status in Status._value2member_map_ else status,
                   title=data.get("title"), message=(data.get("error") or next(iter(data.get("messages") or []), "")))
    elif event["type"] == "run.end":
        out["status"] = data.get("status")
    return f"id: {event['seq']}\nevent: {event['type']}\ndata: {json.dumps(out, ensure_ascii=False)}\n\n"


async def follow(rd: RunDir, after: int, request: Request) -> AsyncIterator[str]:
    """The run's events from `after` on, as the engine appends them (the file may not be
    there yet: a job can wait for a worker)."""
    path = rd.path / RunDir.EVENTS
    mode = "run"
    offset, pending, quiet, started = 0, b"", time.monotonic(), time.monotonic()
    while time.monotonic() - started < LONGEST:
        chunk = b""
        if path.exists():
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            offset += len(chunk)
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            event = json.loads(line)
            if event["type"] == "run.start":
                mode = (event.get("data") or {}).get("mode", mode)
            if event["seq"] <= after:
                continue
            quiet = time.monotonic()
            yield sse(event, mode)
            if event["type"] == "run.end":
                return
        if await request.is_disconnected():
            return
        if time.monotonic() - quiet > KEEPALIVE:
            quiet = time.monotonic()
            yield ": still running\n\n"
        await asyncio.sleep(POLL)


def routes(portal: Portal) -> list[Route]:

    @signed_in(portal)
    async def events(request: Request, session) -> Response:
        run_id = request.path_params["run_id"]
        rd = RunDir(portal.state_dir, run_id) if portal.desk.may_see_run(run_id, session.user) else None
        if rd is None or not rd.path.is_dir():
            return portal.refuse(request, session, 404, f"there is no run {run_id!r} that you may see", run_id=run_id)
        try:
            after = int(request.headers.get("last-event-id", "0"))
        except ValueError:
            after = 0
        return StreamingResponse(follow(rd, after, request), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    return [Route("/runs/{run_id}/events", events, methods=["GET"])]
