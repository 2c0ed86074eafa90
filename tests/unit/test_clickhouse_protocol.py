"""The ClickHouse HTTP protocol's pure parts: credentials, requests, formats, errors, encodings."""

from __future__ import annotations

import base64
import gzip
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.facilities import hash_api_key
from hutong.api.clickhouse_http import authorise
from hutong.api.clickhouse_protocol import (
    ClickHouseError,
    Credentials,
    choose_encoding,
    content_type,
    credentials,
    decode_body,
    encode_body,
    engine_message,
    error_body,
    http_status,
    output_format,
    parse_request,
    setting_refusal,
)
from hutong.users import User, Users


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(("headers", "params", "expected"), [
    ({"authorization": basic("li.analyst", "s3cret:x")}, {}, Credentials("li.analyst", "s3cret:x")),
    ({"x-clickhouse-user": "li", "x-clickhouse-key": "k"}, {}, Credentials("li", "k")),
    ({}, {"user": "li", "password": "k"}, Credentials("li", "k")),
    ({"authorization": "Bearer tok"}, {}, Credentials(token="tok")),
    ({}, {}, Credentials()),
    ({"x-clickhouse-user": "li"}, {}, Credentials("li", "")),
])
def test_credentials_come_from_any_one_place(headers: dict[str, str], params: dict[str, str],
                                             expected: Credentials) -> None:
    assert credentials(headers, params) == expected


@pytest.mark.parametrize(("headers", "params"), [
    ({"authorization": "Basic %%%"}, {}),
    ({"authorization": "Digest x"}, {}),
    ({"authorization": basic("a", "b"), "x-clickhouse-user": "a"}, {}),
    ({"x-clickhouse-user": "a"}, {"user": "a", "password": "b"}),
])
def test_malformed_or_mixed_credentials_fail_authentication(headers: dict[str, str],
                                                            params: dict[str, str]) -> None:
    with pytest.raises(ClickHouseError) as caught:
        credentials(headers, params)
    assert caught.value.code == 516


def test_request_joins_the_query_parameter_and_the_body() -> None:
    request = parse_request(
        [("query", "SELECT"), ("default_format", "JSON"), ("database", "system"),
         ("param_id", "42"), ("max_threads", "2"), ("session_id", "s"), ("query_id", "q1"),
         ("wait_end_of_query", "1"), ("enable_http_compression", "0")],
        {}, b"1")
    assert request.sql == "SELECT\n1"
    assert (request.default_format, request.database, request.query_id) == ("JSON", "system",
                                                                            "q1")
    assert request.parameters == {"id": "42"}
    assert request.settings == {"max_threads": "2"}  # transport parameters never reach the engine
    assert request.compress is False


def test_request_defaults_and_headers() -> None:
    request = parse_request([], {"x-clickhouse-format": "CSV", "x-clickhouse-database": "hutong"},
                            b"SELECT 1")
    assert (request.default_format, request.database, request.compress) == ("CSV", "hutong", True)
    assert parse_request([("query", "SELECT 1")], {}, b"").default_format == "TabSeparated"


@pytest.mark.parametrize(("params", "body", "code"), [
    ([], b"  ", 62),
    ([("default_format", "JSON; DROP")], b"SELECT 1", 73),
    ([("compress", "1")], b"SELECT 1", 48),
    ([("decompress", "1")], b"SELECT 1", 48),
    ([], b"SELECT '\xff'", 36),
])
def test_requests_that_cannot_be_served(params: list[tuple[str, str]], body: bytes,
                                        code: int) -> None:
    with pytest.raises(ClickHouseError) as caught:
        parse_request(params, {}, body)
    assert caught.value.code == code


def test_settings_may_only_restate_what_the_session_has() -> None:
    current = {"readonly": "1", "max_threads": "auto(4)", "enable_http_compression": "1"}
    assert setting_refusal({"readonly": "1", "enable_http_compression": "true"}, current) is None
    lifted = setting_refusal({"readonly": "0"}, current)
    assert lifted is not None and lifted.code == 164
    changed = setting_refusal({"max_threads": "2"}, current)
    assert changed is not None and changed.code == 164
    unknown = setting_refusal({"max_treads": "2"}, current)
    assert unknown is not None and unknown.code == 115


@pytest.mark.parametrize(("canonical", "fmt"), [
    ("SELECT 1", "TabSeparated"),
    ("SELECT 1 FORMAT JSON", "JSON"),
    ("SELECT 1 FORMAT JSONEachRow SETTINGS max_threads = 1", "JSONEachRow"),
    ("SELECT 1 SETTINGS max_threads = 1 FORMAT Native", "Native"),
    ("SELECT 'x FORMAT CSV'", "TabSeparated"),
    ("SELECT 1 AS FORMAT", "TabSeparated"),
])
def test_the_answer_format_is_the_statements_own_or_the_default(canonical: str,
                                                                 fmt: str) -> None:
    assert output_format(canonical, "TabSeparated") == fmt


@pytest.mark.parametrize(("fmt", "expected"), [
    ("TabSeparated", "text/tab-separated-values; charset=UTF-8"),
    ("TSVWithNames", "text/tab-separated-values; charset=UTF-8"),
    ("CSVWithNames", "text/csv; charset=UTF-8; header=present"),
    ("JSON", "application/json; charset=UTF-8"),
    ("JSONEachRow", "application/x-ndjson; charset=UTF-8"),
    ("Native", "application/octet-stream"),
    ("RowBinaryWithNamesAndTypes", "application/octet-stream"),
    ("Parquet", "application/octet-stream"),
    ("Pretty", "text/plain; charset=UTF-8"),
])
def test_content_types(fmt: str, expected: str) -> None:
    assert content_type(fmt) == expected


def test_errors_read_like_clickhouse_errors() -> None:
    nested = ("Code: 164. DB::Exception: Code: 164. DB::Exception: Cannot modify 'readonly' "
              "setting in readonly mode. (READONLY) (version 26.9.2.1). (READONLY)")
    message = engine_message(nested)
    assert message == "Cannot modify 'readonly' setting in readonly mode. (READONLY)"
    assert error_body(164, message, "26.9.2.1") == (
        b"Code: 164. DB::Exception: Cannot modify 'readonly' setting in readonly mode. "
        b"(READONLY) (version 26.9.2.1)\n")
    assert error_body(516, "li: Authentication failed", "1") == (
        b"Code: 516. DB::Exception: li: Authentication failed. (AUTHENTICATION_FAILED) "
        b"(version 1)\n")
    assert [http_status(c) for c in (194, 516, 497, 164, 62, 60, 229, 999)] == [
        401, 403, 403, 403, 400, 404, 413, 500]


@pytest.mark.parametrize(("accept", "chosen"), [
    ("lz4,zstd,br,gzip,deflate", "lz4"),
    ("br, gzip;q=0.5", "gzip"),
    ("gzip;q=0, deflate", "deflate"),
    ("identity", None),
    (None, None),
])
def test_the_first_encoding_the_client_accepts_and_this_side_writes(accept: str | None,
                                                                    chosen: str | None) -> None:
    assert choose_encoding(accept) == chosen


@given(st.binary(max_size=5000), st.sampled_from(["gzip", "deflate", "lz4", "zstd"]))
def test_encodings_round_trip(data: bytes, encoding: str) -> None:
    assert decode_body(encode_body(data, encoding), encoding, len(data) + 1) == data


def test_request_bodies_are_bounded_after_decoding() -> None:
    bomb = gzip.compress(b"0" * 100_000)
    with pytest.raises(ClickHouseError) as caught:
        decode_body(bomb, "gzip", 1000)
    assert caught.value.code == 229
    assert decode_body(zlib.compress(b"SELECT 1"), "deflate", 100) == b"SELECT 1"
    for body, encoding, code in ((b"not gzip", "gzip", 271), (b"x", "snappy", 89)):
        with pytest.raises(ClickHouseError) as caught:
            decode_body(body, encoding, 100)
        assert caught.value.code == code


USERS = Users([User(name="li.analyst", roles=["analyst"], tokens=[hash_api_key("tok-li")]),
               User(name="dr.wang", roles=["clinician"], tokens=[hash_api_key("tok-wang")])],
              api_token="the-api-token")


def test_analysts_and_admins_get_in_with_their_token_as_password() -> None:
    assert authorise(USERS, Credentials("li.analyst", "tok-li"), "10.0.0.9").name == "li.analyst"
    assert authorise(USERS, Credentials("api-token", "the-api-token"), "10.0.0.9").name \
        == "api-token"
    assert authorise(USERS, Credentials(token="the-api-token"), "10.0.0.9").name == "api-token"


@pytest.mark.parametrize(("given_", "host", "code"), [
    (Credentials(), "127.0.0.1", 194),
    (Credentials("li.analyst", "wrong"), "127.0.0.1", 516),
    (Credentials("someone-else", "the-api-token"), "127.0.0.1", 516),
    (Credentials(token="wrong"), "127.0.0.1", 516),
    (Credentials("dr.wang", "tok-wang"), "127.0.0.1", 497),  # a clinician is not an analyst
    (Credentials("li.analyst", "tok-wang"), "127.0.0.1", 516),
])
def test_wrong_or_missing_credentials_are_refused(given_: Credentials, host: str,
                                                  code: int) -> None:
    with pytest.raises(ClickHouseError) as caught:
        authorise(USERS, given_, host)
    assert caught.value.code == code


def test_a_development_hub_answers_this_machine_as_default() -> None:
    nobody = Users()
    assert authorise(nobody, Credentials(), "127.0.0.1").name == "default"
    assert authorise(nobody, Credentials("default", ""), "::1").has("analyst")
    for given_, host, code in ((Credentials(), "10.0.0.9", 195),
                               (Credentials("default", "x"), "127.0.0.1", 516),
                               (Credentials("li", ""), "127.0.0.1", 516)):
        with pytest.raises(ClickHouseError) as caught:
            authorise(nobody, given_, host)
        assert caught.value.code == code


def test_an_empty_port_setting_turns_the_interface_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from hutong.config import load_settings

    assert load_settings().clickhouse_http_port == 8123
    monkeypatch.setenv("HUTONG_CLICKHOUSE_HTTP_PORT", "")
    assert load_settings().clickhouse_http_port is None
    monkeypatch.setenv("HUTONG_CLICKHOUSE_HTTP_PORT", "9123")
    assert load_settings().clickhouse_http_port == 9123
