"""Accounts: hashing, first admin, login, roles."""

import pytest

from engine.auth import AuthProblem, can, check_login, create_user, needs_first_admin
from store import users


def test_first_admin_then_login(con):
    assert needs_first_admin(con)
    create_user(con, "ada", "long enough", "admin")
    assert not needs_first_admin(con)
    assert check_login(con, "ada", "long enough") == {"name": "ada", "role": "admin"}
    assert check_login(con, "ada", "wrong password") is None
    assert check_login(con, "nobody", "long enough") is None
    assert users.get_user(con, "ada")["password_hash"].startswith("$2")  # bcrypt, not plain


@pytest.mark.parametrize(
    "name,password,role,message",
    [
        ("a", "long enough", "reviewer", "user name"),
        ("bob", "short", "reviewer", "8"),
        ("bob", "long enough", "boss", "role"),
    ],
)
def test_bad_accounts_are_refused(con, name, password, role, message):
    with pytest.raises(AuthProblem, match=message):
        create_user(con, name, password, role)


def test_duplicate_user_refused(con):
    create_user(con, "bob", "long enough")
    with pytest.raises(AuthProblem, match="already"):
        create_user(con, "bob", "another one")


def test_reviewers_cannot_reach_admin_actions():
    reviewer, admin = {"name": "r", "role": "reviewer"}, {"name": "a", "role": "admin"}
    for action in ("train", "deploy", "delete", "users", "promote", "compare"):
        assert not can(reviewer, action) and can(admin, action)
    assert can(reviewer, "review") and not can(None, "review")
