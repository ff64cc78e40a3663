"""JSON API endpoints for integrations (API tokens, ``collector.web.tokens``).

``POST /api/box-commands`` is ``evalbox box-cmd`` over HTTP, for the window PC
or the queue system holding a ``write:box-commands`` token (no shell on the
collector's machine)::

    POST /api/box-commands
    Authorization: Bearer evb_…
    {"device": "BOX-001", "op": "invite", "ticket": "A017"}

    202 {"id": 42, "device": "BOX-001", "op": "invite", "ticket": "A017", "officer": null}

``op`` is ``invite`` (optional ``ticket``), ``signin`` (``officer``: badge
number) or ``signout``; the command is refused exactly as ``evalbox box-cmd``
refuses it (400 with the reason), a box outside the token's unit is 403, an
unknown box 404. The running collector signs and sends the queued command
within a second, over the transport the box last spoke on.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from collector.errors import EvalboxError
from collector.ingest.provision import check_box_command
from collector.store import Store
from collector.web import auth
from collector.web.http import WEB, api_error
from collector.web.scope import Viewer

MAX_BODY = 4096


def _text_field(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key}: expected a string")
    return value


async def api_box_command(request: web.Request, viewer: Viewer, session: auth.Session) -> web.StreamResponse:
    """Queue a command for a box of the caller's units (what ``evalbox box-cmd`` does)."""
    db = request.app[WEB].db
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        return api_error(413, "too_large", f"a box command is at most {MAX_BODY} bytes of JSON")
    try:
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("expected a JSON object")
        device, op = _text_field(body, "device"), _text_field(body, "op")
        officer, ticket = _text_field(body, "officer"), _text_field(body, "ticket")
        if not device or not op:
            raise ValueError('"device" and "op" are required')
        unknown = set(body) - {"device", "op", "officer", "ticket"}
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    except (ValueError, UnicodeDecodeError) as exc:
        return api_error(400, "bad_request", f"body: {exc}")
    try:
        check_box_command(device, op, officer, ticket, api=True)
    except EvalboxError as exc:
        return api_error(400, "bad_command", str(exc))
    row = await db.fetchone(
        "SELECT w.unit_id FROM devices d JOIN windows w ON w.id = d.window_id WHERE d.id = ?", (device,)
    )
    if row is None:
        return api_error(404, "not_found", f"device {device!r} does not exist")
    if not viewer.sees_unit(row["unit_id"]):
        return api_error(403, "forbidden", f"device {device!r} belongs to another unit")
    cid = await Store(db).queue_command(device, op, officer, ticket)
    return web.json_response({"id": cid, "device": device, "op": op, "officer": officer, "ticket": ticket}, status=202)
