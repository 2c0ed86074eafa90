"""The ClickHouse HTTP protocol as pure functions: requests in, answers out, no I/O.

What a ClickHouse client sends (``GET /?query=...`` or ``POST /`` with the query
in the body, URL parameters, credentials) becomes a `QueryRequest`; failures
become `ClickHouseError`, answered the way a ClickHouse server answers: an HTTP
status from the code (ClickHouse's ``exceptionCodeToHTTPStatus``), the header
``X-ClickHouse-Exception-Code`` and a body ``Code: 164. DB::Exception: ... (READONLY)``.
`hutong.api.clickhouse_http` serves them.
"""

from __future__ import annotations

import base64
import binascii
import functools
import gzip
import json
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hutong.errors import HutongError

__all__ = ["DEFAULT_FORMAT", "ClickHouseError", "Credentials", "QueryRequest", "choose_encoding",
           "content_type", "credentials", "decode_body", "encode_body", "engine_message",
           "error_body", "http_status", "output_format", "parse_request", "setting_refusal",
           "summary"]

DEFAULT_FORMAT = "TabSeparated"

#: URL parameters that steer the transport; none reaches the engine as a setting.
TRANSPORT_PARAMETERS = frozenset({
    "query", "database", "default_format", "query_id", "session_id", "session_timeout",
    "session_check", "quota_key", "buffer_size", "wait_end_of_query", "http_wait_end_of_query",
    "http_response_buffer_size", "send_progress_in_http_headers",
    "http_headers_progress_interval_ms", "enable_http_compression", "http_zlib_compression_level",
    "client_protocol_version", "role", "user", "password", "compress", "decompress"})

_NAMES = {1001: "STD_EXCEPTION", 36: "BAD_ARGUMENTS", 48: "NOT_IMPLEMENTED", 62: "SYNTAX_ERROR",
          73: "UNKNOWN_FORMAT", 89: "UNKNOWN_COMPRESSION_METHOD", 115: "UNKNOWN_SETTING",
          164: "READONLY", 194: "REQUIRED_PASSWORD", 195: "IP_ADDRESS_NOT_ALLOWED",
          202: "TOO_MANY_SIMULTANEOUS_QUERIES", 229: "QUERY_IS_TOO_LARGE",
          271: "CANNOT_DECOMPRESS", 396: "TOO_MANY_ROWS_OR_BYTES", 497: "ACCESS_DENIED",
          516: "AUTHENTICATION_FAILED"}
_STATUS: dict[int, int] = {
    194: 401, 192: 403, 193: 403, 195: 403, 497: 403, 516: 403, 164: 403,
    **dict.fromkeys((6, 8, 26, 27, 36, 38, 41, 53, 62, 72, 117, 321, 457), 400),
    **dict.fromkeys((46, 47, 50, 56, 60, 63, 73, 78, 81, 115, 456, 511), 404),
    229: 413, 48: 501, 159: 408, 89: 415}
_FORMAT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+([A-Za-z][A-Za-z0-9_]*)(?:\s+SETTINGS\s.*)?\Z",
                              re.IGNORECASE | re.DOTALL)
_BINARY_FORMATS = ("native", "rowbinary", "arrow", "parquet", "orc", "avro", "protobuf",
                   "msgpack", "capnproto", "npy", "bson", "one", "null")


_Encode = Callable[[bytes], bytes]
_Decode = Callable[[bytes, int], bytes]


class ClickHouseError(HutongError):
    """A request this interface answers with a ClickHouse error code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the caller presented: a name and password, a bearer token, or nothing."""

    user: str | None = None
    password: str = ""
    token: str | None = None

    @property
    def given(self) -> bool:
        return self.user is not None or self.token is not None or bool(self.password)


@dataclass(frozen=True, slots=True)
class QueryRequest:
    """One statement to run and how to answer it."""

    sql: str
    default_format: str = DEFAULT_FORMAT
    database: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    query_id: str | None = None
    compress: bool = True


def credentials(headers: Mapping[str, str], params: Mapping[str, str]) -> Credentials:
    """The caller's credentials from ``Authorization`` (Basic or Bearer), the
    ``X-ClickHouse-User``/``-Key`` headers or the ``user``/``password`` parameters.

    ``headers`` is looked up by lower-case name. Two ways at once are refused, as
    ClickHouse refuses them.
    """
    ways: list[Credentials] = []
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            ways.append(Credentials(token=value.strip()))
        elif scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise ClickHouseError(516, "Malformed basic credentials") from None
            user, _, password = decoded.partition(":")
            ways.append(Credentials(user or None, password))
        else:
            raise ClickHouseError(516, "Unsupported Authorization scheme (Basic or Bearer)")
    if "x-clickhouse-user" in headers or "x-clickhouse-key" in headers:
        ways.append(Credentials(headers.get("x-clickhouse-user") or None,
                                headers.get("x-clickhouse-key", "")))
    if "user" in params or "password" in params:
        ways.append(Credentials(params.get("user") or None, params.get("password", "")))
    if len(ways) > 1:
        raise ClickHouseError(516, "Use one way of authenticating: the Authorization header, "
                                   "the X-ClickHouse-User/Key headers or the user/password "
                                   "parameters")
    return ways[0] if ways else Credentials()


def parse_request(params: Iterable[tuple[str, str]], headers: Mapping[str, str],
                  body: bytes) -> QueryRequest:
    """The statement and its parameters from the URL and the (decoded) body.

    Like ClickHouse, the ``query`` parameter and the body together form the
    statement, a line feed between them.
    """
    named = dict(params)
    if any(named.get(name, "0") not in ("", "0") for name in ("compress", "decompress")):
        raise ClickHouseError(48, "ClickHouse's own block compression (compress=1, "
                                  "decompress=1) is not served; use HTTP compression "
                                  "(Accept-Encoding, Content-Encoding) instead")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ClickHouseError(36, "The query is not UTF-8 text") from None
    sql = "\n".join(part for part in (named.get("query", ""), text) if part)
    if not sql.strip():
        raise ClickHouseError(62, "Empty query")
    fmt = named.get("default_format") or headers.get("x-clickhouse-format") or DEFAULT_FORMAT
    if not _FORMAT_NAME.match(fmt):
        raise ClickHouseError(73, f"Unknown format {fmt!r}")
    settings = {k: v for k, v in named.items()
                if k not in TRANSPORT_PARAMETERS and not k.startswith("param_")}
    return QueryRequest(
        sql=sql, default_format=fmt,
        database=named.get("database") or headers.get("x-clickhouse-database") or None,
        parameters={k[6:]: v for k, v in named.items() if k.startswith("param_")},
        settings=settings, query_id=named.get("query_id") or None,
        compress=named.get("enable_http_compression", "1") != "0")


def setting_refusal(settings: Mapping[str, str],
                    current: Mapping[str, str]) -> ClickHouseError | None:
    """Why ``settings`` cannot apply to a read-only session holding ``current``.

    Asking for the value a setting already has is harmless (clients do it); any
    other value would change a setting, which ``readonly = 1`` forbids.
    """
    for name, value in settings.items():
        if name not in current:
            return ClickHouseError(115, f"Unknown setting '{name}'")
        if _setting_text(value) != _setting_text(current[name]):
            return ClickHouseError(164, f"Cannot modify '{name}' setting in readonly mode")
    return None


def output_format(canonical_sql: str, default: str) -> str:
    """The format of the answer: the statement's own ``FORMAT``, else ``default``.

    ``canonical_sql`` is the engine's one-line rendering (no comments).
    """
    found = _TRAILING_FORMAT.search(canonical_sql.strip())
    return found.group(1) if found else default


def content_type(fmt: str) -> str:
    """The Content-Type a ClickHouse server gives the format."""
    name = fmt.lower()
    if name.startswith(_BINARY_FORMATS):
        return "application/octet-stream"
    if (name.startswith("json") and ("eachrow" in name or "lines" in name)) or name == "ndjson":
        return "application/x-ndjson; charset=UTF-8"
    if name.startswith("json"):
        return "application/json; charset=UTF-8"
    if name.startswith(("tsv", "tabseparated")):
        return "text/tab-separated-values; charset=UTF-8"
    if name.startswith("csv"):
        header = "present" if "withnames" in name else "absent"
        return f"text/csv; charset=UTF-8; header={header}"
    if name == "xml":
        return "application/xml; charset=UTF-8"
    return "text/plain; charset=UTF-8"


def engine_message(detail: str) -> str:
    """The engine's error text without its repeated ``Code: N. DB::Exception:`` prefixes
    and version trailers (chDB nests them)."""
    marker = "DB::Exception: "
    text = detail[detail.rfind(marker) + len(marker):] if marker in detail else detail
    cut = text.find(" (version ")
    return (text[:cut] if cut >= 0 else text).strip()


def error_body(code: int, message: str, version: str) -> bytes:
    """The body ClickHouse sends with an error."""
    name = _NAMES.get(code)
    if name and not message.rstrip().endswith(f"({name})"):
        message = f"{message.rstrip().rstrip('.')}. ({name})"
    return f"Code: {code}. DB::Exception: {message} (version {version})\n".encode()


def http_status(code: int) -> int:
    return _STATUS.get(code, 500)


def summary(read_rows: int, read_bytes: int, elapsed_ns: int, result_bytes: int) -> str:
    """``X-ClickHouse-Summary``: the counters as ClickHouse spells them (strings)."""
    values: dict[str, Any] = {
        "read_rows": read_rows, "read_bytes": read_bytes, "written_rows": 0,
        "written_bytes": 0, "total_rows_to_read": read_rows, "result_rows": 0,
        "result_bytes": result_bytes, "elapsed_ns": elapsed_ns}
    return json.dumps({k: str(v) for k, v in values.items()}, separators=(",", ":"))


def choose_encoding(accept_encoding: str | None) -> str | None:
    """The first encoding the client accepts (in its order) that this side can write."""
    for item in (accept_encoding or "").split(","):
        token, _, quality = item.strip().partition(";")
        token = token.strip().lower()
        if quality.strip().replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
            continue
        if token in _codecs():
            return token
    return None


def encode_body(data: bytes, encoding: str) -> bytes:
    return _codecs()[encoding][0](data)


def decode_body(data: bytes, encoding: str | None, limit: int) -> bytes:
    """The request body without its ``Content-Encoding``; at most ``limit`` bytes of it."""
    if not encoding or encoding.lower() == "identity":
        return data
    codec = _codecs().get(encoding.strip().lower())
    if codec is None:
        raise ClickHouseError(89, f"Unknown Content-Encoding {encoding!r}")
    try:
        decoded = codec[1](data, limit + 1)
    except Exception:
        raise ClickHouseError(271, f"The body is not valid {encoding}") from None
    if len(decoded) > limit:
        raise ClickHouseError(229, f"The query is larger than {limit} bytes")
    return decoded


def _setting_text(value: str) -> str:
    text = value.strip().strip("'").lower()
    return {"true": "1", "false": "0"}.get(text, text)


def _zlib_decode(wbits: int) -> _Decode:
    def decode(data: bytes, limit: int) -> bytes:
        return zlib.decompressobj(wbits).decompress(data, limit)
    return decode


@functools.cache
def _codecs() -> dict[str, tuple[_Encode, _Decode]]:
    """Encoding name: (compress, decompress at most n bytes)."""
    codecs: dict[str, tuple[_Encode, _Decode]] = {
        "gzip": (lambda d: gzip.compress(d, 3), _zlib_decode(16 + zlib.MAX_WBITS)),
        "deflate": (lambda d: zlib.compress(d, 3), _zlib_decode(zlib.MAX_WBITS)),
    }
    try:
        import lz4.frame as lz4  # type: ignore[import-untyped]

        codecs["lz4"] = (lz4.compress,
                         lambda d, n: lz4.LZ4FrameDecompressor().decompress(d, max_length=n))
    except ImportError:  # pragma: no cover - clickhouse-connect installs it
        pass
    try:
        from backports import zstd

        codecs["zstd"] = (zstd.compress,
                          lambda d, n: zstd.ZstdDecompressor().decompress(d, max_length=n))
    except ImportError:  # pragma: no cover
        pass
    return codecs
