"""The pure parts of SSO: the [sso] settings (sub-tables, env overrides, checks naming the setting),
the `next` rule (no open redirect), GitHub's address choice and the OIDC claim readers."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import pytest

from control.cli import _settings
from control.errors import ValidationError
from control.services.sso import (
    display_name,
    email_is_verified,
    github_primary_email,
    parse_next,
    parse_sso_config,
)
from control.settings import SettingsError, load_settings

OKTA = {"enabled": True, "issuer": "https://example.okta.com/", "client_id": "cid", "client_secret": "sec"}


def section(**over: Any) -> dict[str, Any]:
    base = load_settings(env={}).section("sso")
    return {**base, **over}


def test_everything_is_off_by_default() -> None:
    assert parse_sso_config(section()).providers == {}


def test_a_config_file_fills_sub_tables_key_by_key(tmp_path: Path) -> None:
    path = tmp_path / "mittr.toml"
    path.write_text('[sso.google]\nenabled = true\nclient_id = "g"\n\n'
                    '[sso.oidc.okta]\nenabled = true\nissuer = "https://example.okta.com"\nclient_id = "o"\n'
                    'client_secret = ""\n')
    settings = load_settings(path, env={"MITTR_SSO__GOOGLE__CLIENT_SECRET": "from-env",
                                        "MITTR_SSO__OIDC__OKTA__CLIENT_SECRET": "okta-env"})
    google = settings.section("sso")["google"]
    assert google["client_secret"] == "from-env"
    assert google["discovery_url"] == "https://accounts.google.com/.well-known/openid-configuration"
    cfg = parse_sso_config(settings.section("sso"))
    assert set(cfg.providers) == {"google", "okta"}
    assert cfg.providers["okta"].discovery_url == "https://example.okta.com/.well-known/openid-configuration"
    assert cfg.providers["okta"].client_secret == "okta-env"
    assert "okta-env" not in repr(cfg.providers["okta"])           # secrets stay out of logs
    # The environment fills keys the file has; it does not invent them in an open table.
    with pytest.raises(SettingsError, match=r"sso\.oidc\.okta\.scopes"):
        load_settings(path, env={"MITTR_SSO__OIDC__OKTA__SCOPES": "openid"})


def test_unknown_settings_are_named(tmp_path: Path) -> None:
    path = tmp_path / "mittr.toml"
    path.write_text("[sso.google]\nclient_idd = \"g\"\n")
    with pytest.raises(SettingsError, match=r"sso\.google\.client_idd"):
        load_settings(path, env={})
    with pytest.raises(SettingsError, match=r"sso\.github\.nope"):
        load_settings(env={"MITTR_SSO__GITHUB__NOPE": "1"})
    with pytest.raises(SettingsError, match=r"sso\.oidc\.okta\.tenant"):
        parse_sso_config(section(oidc={"okta": {**OKTA, "tenant": "x"}}))


@pytest.mark.parametrize(("over", "says"), [
    ({"google": {"enabled": True, "client_id": "", "client_secret": "s"}}, "sso.google.client_id"),
    ({"github": {"enabled": "yes"}}, "sso.github.enabled"),
    ({"oidc": {"Okta!": OKTA}}, "sso.oidc.Okta!"),
    ({"oidc": {"github": OKTA}}, "sso.oidc.github"),
    ({"oidc": {"okta": {**OKTA, "issuer": "ftp://x"}}}, "sso.oidc.okta.issuer"),
    ({"oidc": {"okta": {**OKTA, "scopes": ["profile"]}}}, "must include openid, email"),
    ({"oidc": {"okta": {**OKTA, "token_auth_method": "private_key_jwt"}}}, "token_auth_method"),
    ({"state_ttl_s": 5}, "sso.state_ttl_s"),
    ({"http_timeout_s": 0}, "sso.http_timeout_s"),
])
def test_bad_settings_are_refused(over: dict[str, Any], says: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(says)):
        parse_sso_config(section(**over))


def test_the_cli_refuses_a_bad_sso_section(tmp_path: Path) -> None:
    path = tmp_path / "mittr.toml"
    path.write_text("[sso.github]\nenabled = true\n")
    with pytest.raises(SystemExit, match=r"sso\.github\.client_id"):
        _settings(argparse.Namespace(config=str(path)))


@pytest.mark.parametrize("good", ["/", "/endpoints", "/events?status=dead&x=%2F%2F", "/a/b#c"])
def test_next_accepts_local_paths(good: str) -> None:
    assert parse_next(good) == good
    assert parse_next(None) == parse_next("") == "/"


@pytest.mark.parametrize("bad", ["//evil.example", "https://evil.example/", "/\\evil.example", "evil",
                                 "/a b", "/a\tb", "/\x00", "http:/x", "/" + "a" * 2001, "javascript:alert(1)"])
def test_next_refuses_anything_else(bad: str) -> None:
    with pytest.raises(ValidationError):
        parse_next(bad)


def test_github_needs_a_primary_verified_address() -> None:
    assert github_primary_email([{"email": "a@x.io", "primary": False, "verified": True},
                                 {"email": "b@x.io", "primary": True, "verified": True}]) == "b@x.io"
    assert github_primary_email([{"email": "b@x.io", "primary": True, "verified": False},
                                 {"email": "a@x.io", "primary": False, "verified": True}]) is None
    assert github_primary_email([{"email": "b@x.io", "primary": True, "verified": "true"}]) is None
    assert github_primary_email({"message": "Bad credentials"}) is None


def test_claim_readers() -> None:
    assert email_is_verified(True) and email_is_verified("true") and email_is_verified("TRUE")
    assert not any(email_is_verified(v) for v in (False, "false", None, 1, "yes"))
    assert display_name({"name": " Ada "}, "a@x.io") == "Ada"
    assert display_name({"given_name": "Ada", "family_name": "L"}, "a@x.io") == "Ada L"
    assert display_name({}, "ada@x.io") == "ada"
