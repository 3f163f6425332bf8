"""OpenAPI 3.1, generated from the operations' declarations and their pydantic models; served at `/openapi.json`,
with Swagger UI at `/docs`.

Pydantic emits JSON Schema 2020-12, which is OpenAPI 3.1's schema dialect, so model schemas go into
`components/schemas` unchanged. Every response documents `X-Request-ID`; every operation documents the error
envelope for each status it can return.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from gateway.api import Operation
from gateway.schemas import ErrorEnvelope
from voicereel.errors import HTTP_STATUS, ErrorCode
from voicereel.schemas import OPUS_SAMPLE_RATES, SUPPORTED_SAMPLE_RATES
from voicereel.settings import Settings

REF = "#/components/schemas/{model}"

DESCRIPTION = """\
Multi-speaker text-to-speech: register voices from reference audio, submit scripts as asynchronous jobs, and
fetch the mastered audio and captions through expiring URLs.

**Authentication.** Send the API key as `X-VR-APIKEY: vr_…` or `Authorization: Bearer vr_…`.

**Request signing** (required for keys created with signing on, checked whenever sent): `X-VR-Timestamp` (unix
seconds) and `X-VR-Signature: v1=<hex>`, where hex is HMAC-SHA256 with the key's `vrs_…` signing secret over
`METHOD\\nPATH\\nCANONICAL_QUERY\\nTIMESTAMP\\nSHA256_HEX(BODY)` (see `gateway/signing.py`). Timestamps more than
300 s off and signatures seen before are rejected.

**Errors** always have the shape `{"error": {"code", "message", "details", "request_id"}}`; every response carries
`X-Request-ID`. **Rate limits** are per key (`RateLimit-*` headers; `Retry-After` on 429). POSTs accept
`Idempotency-Key`.
"""

_REQUEST_ID = {
    "X-Request-ID": {
        "description": "Id of this request (echoed when the client sent a well-formed one). Quote it in reports.",
        "required": True,
        "schema": {"type": "string"},
    }
}
_RATE_HEADERS = {
    name: {"description": text, "required": False, "schema": {"type": "string", "pattern": "^[0-9]+$"}}
    for name, text in (
        ("RateLimit-Limit", "Requests per minute this key may make."),
        ("RateLimit-Remaining", "Requests left in the current window."),
        ("RateLimit-Reset", "Seconds until the window frees capacity."),
    )
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying (RATE_LIMITED).",
        "required": False,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}


def _error_statuses(op: Operation) -> dict[int, list[ErrorCode]]:
    codes: list[ErrorCode] = [ErrorCode.INVALID_INPUT, ErrorCode.INTERNAL_ERROR]
    if op.scope is not None:
        codes += [ErrorCode.UNAUTHORIZED, ErrorCode.FORBIDDEN, ErrorCode.RATE_LIMITED, ErrorCode.ENGINE_UNAVAILABLE]
    if op.body is not None or op.form is not None:
        codes += [ErrorCode.PAYLOAD_TOO_LARGE, ErrorCode.UNSUPPORTED_MEDIA_TYPE]
    if op.idempotent:
        codes += [ErrorCode.CONFLICT, ErrorCode.UNPROCESSABLE]
    codes += list(op.errors)
    by_status: dict[int, list[ErrorCode]] = {}
    for code in dict.fromkeys(codes):
        by_status.setdefault(HTTP_STATUS[code], []).append(code)
    return by_status


def _strip_null(schema: dict[str, Any]) -> dict[str, Any]:
    """Optional query parameters are absent, never null: drop the null branch pydantic adds for `X | None`."""
    schema = {k: v for k, v in schema.items() if not (k == "default" and v is None)}
    options = schema.get("anyOf")
    if options:
        rest = [o for o in options if o != {"type": "null"}]
        if len(rest) == 1:
            schema.pop("anyOf")
            schema = {**rest[0], **schema}
        else:
            schema["anyOf"] = rest
    return schema


def _parameters(op: Operation, schemas: dict[tuple[type[BaseModel], str], dict[str, Any]]) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for name, text in op.path_params.items():
        params.append({"name": name, "in": "path", "required": True, "description": text, "schema": {"type": "string"}})
    if op.query is not None:
        schema = schemas[(op.query, "validation")]
        required = set(schema.get("required", []))
        for name, prop in schema["properties"].items():
            prop = _strip_null(prop)
            param: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": prop}
            if "description" in prop:
                param["description"] = prop["description"]
            params.append(param)
    if op.idempotent:
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Retry-safe POST: the same key and body return the first response; a different "
                "body is 422; while the first is in flight, 409.",
                "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
            }
        )
    if op.prefer_wait:
        params.append(
            {
                "name": "Prefer",
                "in": "header",
                "required": False,
                "description": "`wait=N`: hold the response up to N seconds and return the finished job if it "
                "completes in time (capped by the server).",
                "schema": {"type": "string"},
            }
        )
    return params


def _request_body(op: Operation, schemas: dict[tuple[type[BaseModel], str], dict[str, Any]]) -> dict[str, Any] | None:
    if op.body is not None:
        return {"required": True, "content": {"application/json": {"schema": schemas[(op.body, "validation")]}}}
    if op.form is not None and op.file_field is not None:
        # Inline (not a $ref): the text fields plus the file part, in one closed object.
        form = dict(schemas[(op.form, "validation")])
        properties = {**form["properties"], op.file_field: {"type": "string", "format": "binary", "minLength": 1}}
        schema = {**form, "properties": properties, "required": [*form.get("required", []), op.file_field]}
        return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    return None


def _responses(op: Operation, schemas: dict[tuple[type[BaseModel], str], dict[str, Any]]) -> dict[str, Any]:
    success_headers = {**_REQUEST_ID, **(_RATE_HEADERS if op.scope else {})}
    out: dict[str, Any] = {}
    for resp in op.responses:
        entry: dict[str, Any] = {"description": resp.description, "headers": success_headers}
        if resp.links:
            entry["links"] = {
                name: {"operationId": target, "parameters": dict(parameters)} for name, target, parameters in resp.links
            }
        if resp.model is not None:
            entry["content"] = {resp.media_type: {"schema": schemas[(resp.model, "serialization")]}}
        elif resp.status != 204:
            entry["content"] = {resp.media_type: {"schema": {"type": "string"}}}
        out[str(resp.status)] = entry
    error_schema = schemas[(ErrorEnvelope, "serialization")]
    for status, codes in sorted(_error_statuses(op).items()):
        if str(status) in out:
            continue
        headers = {**_REQUEST_ID, **(_RETRY_AFTER if status == 429 else {})}
        out[str(status)] = {
            "description": "Error envelope; code " + " or ".join(f"`{c}`" for c in codes) + ".",
            "headers": headers,
            "content": {"application/json": {"schema": error_schema}},
        }
    return out


# What the validators accept: no NUL, and at least one character that Python's str.strip() keeps. The class is
# spelled out because JSON Schema's (ECMA) \\s and Python's whitespace differ (\\x1c-\\x1f, \\x85, \\ufeff).
_PY_SPACE = "\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
_NOT_BLANK = f"^[^\\x00]*[^\\x00{_PY_SPACE}][^\\x00]*$"


def deployment_rules(components: dict[str, dict[str, Any]], settings: Settings) -> None:
    """Rules the models check in code, written into their schemas so that the document says exactly what this
    deployment accepts: its limits and languages, the sample rates, Opus's rates, no blank or NUL strings."""
    synthesis = components["SynthesisRequest"]
    synthesis["properties"]["script"]["maxItems"] = settings.max_script_lines
    synthesis["properties"]["sample_rate"]["enum"] = list(SUPPORTED_SAMPLE_RATES)
    synthesis["if"] = {"properties": {"output_format": {"const": "ogg"}}, "required": ["output_format"]}
    synthesis["then"] = {"properties": {"sample_rate": {"enum": list(OPUS_SAMPLE_RATES)}}, "required": ["sample_rate"]}
    text = components["ScriptLine"]["properties"]["text"]
    text["maxLength"] = settings.max_line_chars
    text["pattern"] = _NOT_BLANK
    components["ScriptLine"]["properties"]["speaker_id"]["pattern"] = r"^[^\x00]*$"


def form_rules(form: dict[str, Any], settings: Settings) -> None:
    form["properties"]["lang"]["enum"] = list(settings.languages)
    for name in ("name", "reference_script"):
        form["properties"][name]["pattern"] = _NOT_BLANK


def build_openapi(
    operations: Iterable[Operation], settings: Settings, *, title: str = "VoiceReel API", version: str
) -> dict[str, Any]:
    operations = list(operations)
    wanted: list[tuple[type[BaseModel], str]] = [(ErrorEnvelope, "serialization")]
    for op in operations:
        wanted += [(resp.model, "serialization") for resp in op.responses if resp.model is not None]
        wanted += [(model, "validation") for model in (op.query, op.body, op.form) if model is not None]
    keys = list(dict.fromkeys(wanted))
    mapping, definitions = models_json_schema(keys, ref_template=REF)  # type: ignore[arg-type]
    schemas: dict[tuple[type[BaseModel], str], dict[str, Any]] = {key: mapping[key] for key in keys}  # type: ignore[index]
    components = dict(definitions.get("$defs", {}))
    for op in operations:  # query and form models are inlined, not referenced
        for model in (op.query, op.form):
            if model is not None:
                name = schemas[(model, "validation")].get("$ref", "").rsplit("/", 1)[-1]
                schemas[(model, "validation")] = components.pop(name, schemas[(model, "validation")])
        if op.form is not None:
            form_rules(schemas[(op.form, "validation")], settings)
    deployment_rules(components, settings)

    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        path = op.path.replace(":path}", "}")
        entry: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": [op.tag],
            "parameters": _parameters(op, schemas),
            "responses": _responses(op, schemas),
            "security": [{"ApiKeyHeader": []}, {"BearerAuth": []}] if op.scope else [],
        }
        if op.scope:
            entry["x-required-scope"] = op.scope
        if op.description:
            entry["description"] = op.description
        body = _request_body(op, schemas)
        if body is not None:
            entry["requestBody"] = body
        paths.setdefault(path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": DESCRIPTION},
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {
                "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-VR-APIKEY"},
                "BearerAuth": {"type": "http", "scheme": "bearer"},
            },
        },
    }


_DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({{url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true}});</script>
</body></html>
"""


def openapi_routes(document: dict[str, Any], assets_url: str) -> list[Route]:
    payload = json.dumps(document).encode()
    html = _DOCS_HTML.format(title=document["info"]["title"], assets=assets_url.rstrip("/"))

    async def openapi_json(request: Request) -> Response:
        request.scope["state"]["route"] = "/openapi.json"
        return Response(payload, media_type="application/json")

    async def docs(request: Request) -> Response:
        request.scope["state"]["route"] = "/docs"
        return HTMLResponse(html)

    return [
        Route("/openapi.json", openapi_json, methods=["GET"], include_in_schema=False),
        Route("/docs", docs, methods=["GET"], include_in_schema=False),
    ]
