"""Reading an upload's bytes from a multipart body, in memory and within the size limit; a
`ServeError` (one line, with its HTTP status) when that is not possible. Decoding is `train.photos`."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.datastructures import Headers
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from curate.errors import ServeError
from curate.numbers import whole_number
from train.photos import Limits


async def limited(stream: AsyncIterator[bytes], max_bytes: int) -> AsyncIterator[bytes]:
    """The request body, refusing (413) as soon as it passes `max_bytes`."""
    seen = 0
    async for chunk in stream:
        seen += len(chunk)
        if seen > max_bytes:
            raise ServeError(f"upload is larger than {max_bytes // (1024 * 1024)} MB", 413)
        yield chunk


async def read_upload(headers: Headers, stream: AsyncIterator[bytes], limits: Limits, field: str = "file") -> bytes:
    """The bytes of multipart field `field`, parsed in memory (spool limit = body limit, so
    starlette never rolls the upload over to a temporary file)."""
    length = whole_number(headers.get("content-length"))
    if length is not None and length > limits.max_bytes:
        raise ServeError(f"upload is larger than {limits.max_bytes // (1024 * 1024)} MB", 413)
    if not headers.get("content-type", "").startswith("multipart/form-data"):
        raise ServeError("send the photo as multipart/form-data in a field named 'file'", 415)
    parser = MultiPartParser(headers, limited(stream, limits.max_bytes), max_files=1, max_fields=4)
    parser.spool_max_size = limits.max_bytes + 1
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise ServeError(f"malformed multipart upload: {exc}", 400) from None
    except ClientDisconnect:  # the phone went away mid-upload: a handled 400, not a logged traceback
        raise ServeError("the upload was cut off before its end", 400) from None
    try:
        upload = form.get(field)
        if upload is None or isinstance(upload, str):
            raise ServeError(f"no file in field '{field}'", 400)
        data = await upload.read()
    finally:
        await form.close()
    if not data:
        raise ServeError("the uploaded file is empty", 400)
    return data
