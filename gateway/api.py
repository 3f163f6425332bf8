"""Operations: each endpoint is declared once, with what it needs (scope, query model, body model, responses),
and this module runs the common steps around its handler in a fixed order:

1. the API key (401), its scope (403), the key's rate limit (429, `RateLimit-*` headers on every response);
2. the query string into its pydantic model (400; unknown or repeated parameters are errors too);
3. the body, read with a size cap (413), and the HMAC signature over it when sent or required (401);
4. the handler, which gets a `Call` and returns a Response or raises `VoiceReelError`.

The same declarations generate the OpenAPI document (`gateway.openapi`), so the docs cannot drift from the code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import signing
from gateway.auth import Caller, lookup_key, presented_key_hash, signing_secret_for, unauthorized
from gateway.errors import to_voicereel_error
from gateway.observability import key_id_var
from gateway.services import Services
from voicereel.errors import ErrorCode, VoiceReelError

M = TypeVar("M", bound=BaseModel)
Handler = Callable[["Call"], Awaitable[Response]]


@dataclass(frozen=True)
class Out:
    """One documented response: status, body model (None: no body) and media type."""

    status: int
    model: type[BaseModel] | None
    description: str
    media_type: str = "application/json"
    # OpenAPI links: name -> (operationId, {parameter: runtime expression}); clients and fuzzers follow them.
    links: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = ()


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    handler: Handler
    operation_id: str
    summary: str
    tag: str
    responses: tuple[Out, ...]
    errors: tuple[ErrorCode, ...] = ()
    scope: str | None = None  # None: public, no API key
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None  # JSON body
    form: type[BaseModel] | None = None  # multipart text fields; the file field is `file_field`
    file_field: str | None = None
    idempotent: bool = False
    prefer_wait: bool = False
    description: str = ""
    path_params: dict[str, str] = field(default_factory=dict)  # name -> description

    @property
    def streams_body(self) -> bool:
        """Uploads read their own body (streaming, capped) and call `Call.verify_signature` themselves."""
        return self.form is not None


def routes(operations: list[Operation]) -> list[Route]:
    """One Starlette route per path, dispatching on the method, so that a 405 lists every method of the path in
    `Allow` (one route per operation would list only its own). HEAD is served by GET, as Starlette does."""
    by_path: dict[str, dict[str, Operation]] = {}
    for op in operations:
        by_path.setdefault(op.path, {})[op.method] = op
    out = []
    for path, ops in by_path.items():

        async def endpoint(request: Request, ops: dict[str, Operation] = ops) -> Response:
            method = "GET" if request.method == "HEAD" else request.method
            return await run(ops[method], request)

        out.append(Route(path, endpoint, methods=list(ops), name=next(iter(ops.values())).operation_id))
    return out


@dataclass
class Call:
    """What a handler gets: the request, the services, the authenticated caller and the parsed inputs."""

    request: Request
    services: Services
    operation: Operation
    caller: Caller | None = None
    query: Any = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    signature_checked: bool = False

    @property
    def who(self) -> Caller:
        assert self.caller is not None, "operation without a scope has no caller"
        return self.caller

    def path_param(self, name: str) -> str:
        return str(self.request.path_params[name])

    def json(self, model: type[M]) -> M:
        content_type = self.request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json" and not content_type.endswith("+json"):
            raise VoiceReelError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, "send the body as application/json")
        try:
            data = json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise VoiceReelError(ErrorCode.INVALID_INPUT, "body is not valid JSON") from None
        check_strings(data)
        return model.model_validate(data)

    async def verify_signature(self, body_sha256: str) -> None:
        """Check the HMAC signature when the request carries one or the key requires one."""
        caller = self.who
        headers = self.request.headers
        timestamp, signature = headers.get(signing.TIMESTAMP_HEADER), headers.get(signing.SIGNATURE_HEADER)
        self.signature_checked = True
        if not caller.signing_required and timestamp is None and signature is None:
            return
        settings = self.services.settings
        await signing.verify(
            redis_client=self.services.redis,
            secret=signing_secret_for(settings, caller.key_id),
            key_id=caller.key_id,
            method=self.request.method,
            path=self.request.scope["path"],
            query_string=self.request.scope.get("query_string", b"").decode("latin-1"),
            timestamp=timestamp,
            signature=signature,
            body_sha256=body_sha256,
            window_s=settings.signature_window_s,
        )


def json_response(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = model.model_dump_json().encode()
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def check_strings(value: Any, path: str = "body") -> None:
    """Reject NUL characters and lone surrogates anywhere in a JSON document: no database can store them, and no
    legitimate script contains them."""
    if isinstance(value, str):
        if "\x00" in value:
            raise VoiceReelError(ErrorCode.INVALID_INPUT, "strings may not contain NUL characters", {"at": path})
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise VoiceReelError(ErrorCode.INVALID_INPUT, "strings must be valid Unicode", {"at": path}) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            check_strings(key, path)
            check_strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_strings(item, f"{path}[{index}]")


async def authenticate(request: Request, services: Services) -> Caller:
    key_hash = presented_key_hash(request.scope["headers"])
    caller = services.keys.get(key_hash)
    if caller is None:
        caller = await services.in_thread(lookup_key, services.engine, key_hash)
        if caller is None:
            raise unauthorized()
        services.keys.put(key_hash, caller)
    return caller


def parse_query(model: type[M], request: Request) -> M:
    items = request.query_params.multi_items()
    values: dict[str, str] = {}
    for name, value in items:
        if name in values:
            raise VoiceReelError(ErrorCode.INVALID_INPUT, f"query parameter {name!r} is repeated", {"param": name})
        values[name] = value
    check_strings(values, "query")
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        err = to_voicereel_error(exc)
        assert err is not None
        err.message = "query parameters failed validation"
        raise err from None


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _body_too_large(limit)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _body_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _body_too_large(limit: int) -> VoiceReelError:
    return VoiceReelError(ErrorCode.PAYLOAD_TOO_LARGE, f"request body exceeds {limit} bytes", {"limit_bytes": limit})


async def run(op: Operation, request: Request) -> Response:
    services: Services = request.app.state.services
    state = request.scope["state"]
    state["route"] = op.path
    call = Call(request=request, services=services, operation=op)
    try:
        if op.scope is not None:
            caller = await authenticate(request, services)
            call.caller = caller
            state["key_id"] = caller.key_id
            key_id_var.set(caller.key_id)
            caller.require(op.scope)
            call.headers.update(await services.limiter.hit(caller.key_id, caller.rate_limit_per_min))
            services.requests.count(caller.project_id, caller.key_id)
        if op.query is not None:
            call.query = parse_query(op.query, request)
        if not op.streams_body:
            call.body = await read_body(request, services.settings.max_json_body_kb * 1024)
            if call.caller is not None:
                await call.verify_signature(hashlib.sha256(call.body).hexdigest())
        response = await op.handler(call)
        if call.caller is not None and not call.signature_checked:
            raise AssertionError(f"{op.operation_id} did not verify the request signature")
    except Exception as exc:
        err = to_voicereel_error(exc)
        if err is None:
            raise
        err.headers = {**call.headers, **err.headers}
        if err is exc:
            raise
        raise err from exc
    response.headers.update(call.headers)
    return response
