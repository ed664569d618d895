"""Reading request bodies that may be JSON or multipart, and writing JSON responses.

The image endpoints take either form, so they parse the body themselves: JSON is validated against a
pydantic model (off the event loop: bodies can be megabytes of base64); multipart puts image files in
``images`` parts and every other field through the same model's validation, as text.
"""

from __future__ import annotations

import asyncio
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

IMAGES_FIELD = "images"
# Starlette's default; a request this large in file parts is refused (400) before any is read.
MAX_MULTIPART_FILES = 1000

M = TypeVar("M", bound=BaseModel)
BodyKind = Literal["json", "multipart"]


@dataclass(frozen=True)
class Upload:
    filename: str | None
    data: bytes


@dataclass(frozen=True)
class MultipartBody:
    fields: Mapping[str, list[str]]
    files: list[Upload]


def body_kind(request: Request) -> BodyKind:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        return "json"
    if media_type == "multipart/form-data":
        return "multipart"
    raise HTTPException(
        415, f"send application/json or multipart/form-data, not {media_type or 'no content type'!r}"
    )


def _invalid(exc: ValidationError, prefix: tuple[str | int, ...] = ("body",)) -> RequestValidationError:
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    return RequestValidationError([{**e, "loc": (*prefix, *e["loc"])} for e in errors])


async def parse_json(request: Request, model: type[M]) -> M:
    body = await request.body()
    try:
        return await asyncio.to_thread(model.model_validate_json, body)
    except ValidationError as exc:
        raise _invalid(exc) from None


async def parse_multipart(request: Request) -> MultipartBody:
    """Image files from ``images`` parts, in order; text fields by name (a name may repeat)."""
    fields: dict[str, list[str]] = {}
    files: list[Upload] = []
    async with request.form(max_files=MAX_MULTIPART_FILES) as form:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name != IMAGES_FIELD:
                    raise _single_error(
                        (name,), f"unexpected file part; send images as '{IMAGES_FIELD}' parts"
                    )
                files.append(Upload(value.filename, await value.read()))
            elif name == IMAGES_FIELD:
                raise _single_error((name,), "images must be file parts (curl -F images=@photo.jpg)")
            else:
                fields.setdefault(name, []).append(value)
    return MultipartBody(fields, files)


def _single_error(loc: tuple[str | int, ...], message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", *loc), "msg": message, "type": "value_error"}])


def _is_list(annotation: Any) -> bool:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_list(arg) for arg in typing.get_args(annotation))
    return typing.get_origin(annotation) is list


def form_model(model: type[M], body: MultipartBody) -> M:
    """Validate a multipart body against ``model``: the files as ``images``, then the text fields (list
    fields take every value, others exactly one)."""
    data: dict[str, Any] = {IMAGES_FIELD: [f.data for f in body.files]} if body.files else {}
    for name, values in body.fields.items():
        info = model.model_fields.get(name)
        if info is not None and _is_list(info.annotation):
            data[name] = list(values)
        elif len(values) == 1:
            data[name] = values[0]
        else:
            raise _single_error((name,), f"given {len(values)} times; give it once")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc) from None


def json_response(model: BaseModel, headers: Mapping[str, str] | None = None) -> Response:
    """Serialise with pydantic directly: the model is valid already, so FastAPI need not validate it again."""
    return Response(model.model_dump_json(), media_type="application/json", headers=dict(headers or {}))
