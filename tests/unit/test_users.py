"""The users file: tokens kept hashed, found in constant time, bad files refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from hutong.errors import ConfigError
from hutong.users import Users, add_user


def test_a_user_added_logs_in_with_the_token_printed_once(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    token = add_user(path, "dr.wang", ["clinician"])
    assert token not in path.read_text("utf-8")  # only the hash is kept
    users = Users.load(path)
    principal = users.authenticate(token)
    assert principal is not None and principal.name == "dr.wang"
    assert principal.roles == frozenset({"clinician"})
    assert users.login("dr.wang", token) == principal
    assert users.login("someone", token) is None and users.authenticate("guess") is None
    second = add_user(path, "dr.wang", ["sensitive"])  # a second token, roles merged
    assert Users.load(path).authenticate(second).roles == {"clinician", "sensitive"}  # type: ignore[union-attr]
    assert Users.load(path).authenticate(token) is not None  # the first still works


def test_the_api_token_is_a_shared_admin_and_analyst() -> None:
    users = Users.load(None, api_token="s3cret-token")
    assert users.configured
    assert users.authenticate("s3cret-token").roles == {"admin", "analyst"}  # type: ignore[union-attr]
    assert not Users.load(None).configured


@pytest.mark.parametrize(("text", "says"), [
    ("users: [\n", "not YAML"),
    ("users:\n  - {name: a, roles: [nurse], tokens: []}\n", "users.0.roles.0"),
    ("users:\n  - {name: a, roles: [admin], tokens: [plain-token]}\n", "stored hashed"),
    ("users:\n  - {name: a, roles: [admin]}\n  - {name: a, roles: [analyst]}\n",
     "a name appears twice"),
    ("others: []\n", "others"),
])
def test_a_bad_users_file_is_refused_naming_file_and_field(tmp_path: Path, text: str,
                                                           says: str) -> None:
    path = tmp_path / "users.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="users file") as caught:
        Users.load(path)
    assert says in str(caught.value) and str(path) in str(caught.value)


def test_a_missing_users_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        Users.load(tmp_path / "absent.yaml")
