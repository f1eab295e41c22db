"""Who may open /dashboard: loopback in dev, off in production unless configured, HTTP Basic with
argon2 hashes, or a trusted proxy's user header. An EHR's JWT never opens it; every refusal is
the same bare 401."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from cds_service.app import create_app
from cds_service.config import ConfigError, Settings
from cds_service.dashboard.access import REALM
from sec_helpers import ISS, JKU, Keys, TokenFactory  # tests/security, put on the path by conftest

BASE = "https://cds.example.org"
PASSWORD = "correct horse battery staple"
PAGE = "/dashboard"
CSV = "/dashboard/override-reasons.csv"


@pytest.fixture(scope="module")
def users_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("users") / "dashboard-users"
    hasher = PasswordHasher()
    path.write_text(f"# coding analysts\nana:{hasher.hash(PASSWORD)}\n\nben:{hasher.hash('other secret')}\n")
    return str(path)


@pytest.fixture
def build(tmp_path):
    apps = []

    def make(**overrides):
        app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'cds.sqlite3'}", auth_enabled=False)
                         .with_overrides(**overrides))
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        app.extensions["cds_db"].dispose()


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def assert_bare_401(response, challenge: str | None = None) -> None:
    assert response.status_code == 401
    assert response.get_json()["error"] == "authentication required"
    assert response.headers.get("WWW-Authenticate") == challenge


def test_dev_is_open_on_loopback_only(build) -> None:
    client = build()
    for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        assert client.get(PAGE, environ_base={"REMOTE_ADDR": address}).status_code == 200
    assert client.get(CSV, environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
    for address in ("10.0.0.7", "192.168.1.20", "2001:db8::1", ""):
        assert_bare_401(client.get(PAGE, environ_base={"REMOTE_ADDR": address}))
        assert_bare_401(client.get(CSV, environ_base={"REMOTE_ADDR": address}))


def test_dev_refuses_a_request_a_local_proxy_forwarded(build) -> None:
    client = build()
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
        assert_bare_401(client.get(PAGE, headers={header: "203.0.113.9"}, environ_base={"REMOTE_ADDR": "127.0.0.1"}))


def test_production_is_off_unless_configured(build) -> None:
    client = build(profile="production")
    for path in (PAGE, CSV):
        response = client.get(path, environ_base={"REMOTE_ADDR": "127.0.0.1"})
        assert response.status_code == 404
    assert build(dashboard_auth="off").get(PAGE).status_code == 404  # dev can switch it off too


def test_basic_with_hashed_passwords(build, users_file) -> None:
    client = build(profile="production", dashboard_auth="basic", dashboard_users_path=users_file)
    remote = {"REMOTE_ADDR": "10.0.0.7"}
    assert client.get(PAGE, headers=basic("ana", PASSWORD), environ_base=remote).status_code == 200
    assert client.get(CSV, headers=basic("ana", PASSWORD), environ_base=remote).status_code == 200
    for headers in ({}, basic("ana", "wrong"), basic("ben", PASSWORD), basic("nobody", PASSWORD),
                    {"Authorization": "Basic !!!"}, {"Authorization": "Basic " + base64.b64encode(b"ana").decode()},
                    {"Authorization": "Digest ana"}):
        assert_bare_401(client.get(PAGE, headers=headers, environ_base=remote), REALM)
    # loopback is no excuse once passwords are configured
    assert_bare_401(client.get(PAGE, environ_base={"REMOTE_ADDR": "127.0.0.1"}), REALM)


def test_settings_from_the_environment(users_file) -> None:
    settings = Settings.from_env({"CDS_DASHBOARD_USERS": users_file})
    assert (settings.dashboard_auth, settings.dashboard_users_path) == ("basic", users_file)
    settings = Settings.from_env({"CDS_DASHBOARD_AUTH": "proxy", "CDS_DASHBOARD_PROXIES": "10.0.0.5, 192.168.0.0/24",
                                  "CDS_DASHBOARD_PROXY_HEADER": "X-Auth-Request-User"})
    assert settings.dashboard_proxies == ("10.0.0.5", "192.168.0.0/24")
    assert settings.dashboard_proxy_header == "X-Auth-Request-User"
    assert Settings.from_env({}).dashboard_auth is None


@pytest.mark.parametrize("env, message", [
    ({"CDS_DASHBOARD_AUTH": "ldap"}, "CDS_DASHBOARD_AUTH='ldap': expected one of basic, proxy, off"),
    ({"CDS_DASHBOARD_AUTH": "basic"}, "CDS_DASHBOARD_AUTH='basic': expected CDS_DASHBOARD_USERS set as well"),
    ({"CDS_DASHBOARD_AUTH": "proxy"}, "CDS_DASHBOARD_AUTH='proxy': expected CDS_DASHBOARD_PROXIES set as well"),
    ({"CDS_DASHBOARD_AUTH": "proxy", "CDS_DASHBOARD_PROXIES": "proxy.local"},
     "CDS_DASHBOARD_PROXIES='proxy.local': expected a comma-separated list of IP addresses or networks"),
])
def test_bad_settings_are_refused_with_the_variable_named(env, message) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env)


def test_bad_users_file_stops_the_start_without_quoting_it(build, tmp_path) -> None:
    missing = str(tmp_path / "absent")
    with pytest.raises(ConfigError, match="CDS_DASHBOARD_USERS: cannot read"):
        build(dashboard_auth="basic", dashboard_users_path=missing)
    plain = tmp_path / "plain"
    plain.write_text("ana:hunter2\n")
    with pytest.raises(ConfigError) as error:
        build(dashboard_auth="basic", dashboard_users_path=str(plain))
    assert "line 1" in str(error.value) and "hunter2" not in str(error.value)
    empty = tmp_path / "empty"
    empty.write_text("# nobody yet\n")
    with pytest.raises(ConfigError, match="lists no user"):
        build(dashboard_auth="basic", dashboard_users_path=str(empty))


def test_proxy_header_is_believed_only_from_the_proxy(build) -> None:
    client = build(profile="production", dashboard_auth="proxy", dashboard_proxies=("10.0.0.5", "fd00::/64"),
                   dashboard_proxy_header="X-Forwarded-User")
    user = {"X-Forwarded-User": "ana@hospital.example"}
    assert client.get(PAGE, headers=user, environ_base={"REMOTE_ADDR": "10.0.0.5"}).status_code == 200
    assert client.get(CSV, headers=user, environ_base={"REMOTE_ADDR": "fd00::17"}).status_code == 200
    assert_bare_401(client.get(PAGE, headers=user, environ_base={"REMOTE_ADDR": "10.0.0.6"}))  # not the proxy
    assert_bare_401(client.get(PAGE, headers=user, environ_base={"REMOTE_ADDR": "127.0.0.1"}))
    assert_bare_401(client.get(PAGE, environ_base={"REMOTE_ADDR": "10.0.0.5"}))  # proxy sent no user
    assert_bare_401(client.get(PAGE, headers={"X-Forwarded-User": " "}, environ_base={"REMOTE_ADDR": "10.0.0.5"}))
    assert_bare_401(client.get(PAGE, headers={"X-Other-User": "ana"}, environ_base={"REMOTE_ADDR": "10.0.0.5"}))


def test_an_ehr_jwt_never_opens_the_dashboard(tmp_path, users_file) -> None:
    """A token that the same server accepts on its service URL opens no dashboard, in any mode."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    keys = Keys(ec=ec.generate_private_key(ec.SECP384R1()), rsa=rsa.generate_private_key(65537, 2048),
                other_ec=None, other_rsa=None)
    issuers = tmp_path / "issuers.json"
    issuers.write_text(json.dumps([{"iss": ISS, "jwks": keys.jwks(), "jku": [JKU],
                                    "fhir_servers": ["https://fhir.example.org/r4"]}]))
    tokens = TokenFactory(keys)
    common = dict(database_url=f"sqlite:///{tmp_path / 'cds.sqlite3'}", auth_enabled=True, public_base_url=BASE,
                  trusted_issuers_path=str(issuers))
    for mode in ({"profile": "production"},
                 {"profile": "production", "dashboard_auth": "basic", "dashboard_users_path": users_file},
                 {"profile": "production", "dashboard_auth": "proxy", "dashboard_proxies": ("10.0.0.5",)},
                 {"profile": "dev"}):
        app = create_app(Settings(**common, **mode))
        client = app.test_client()
        discovery = client.get("/cds-services", headers={"Authorization": f"Bearer {tokens.make(aud=BASE + '/cds-services')}"},
                               environ_base={"REMOTE_ADDR": "10.0.0.7"})
        assert discovery.status_code == 200  # the token is good for the EHR's endpoints
        for audience in (BASE + "/cds-services", BASE + PAGE):
            response = client.get(PAGE, headers={"Authorization": f"Bearer {tokens.make(aud=audience)}"},
                                  environ_base={"REMOTE_ADDR": "10.0.0.7"})
            assert response.status_code in (401, 404), mode
            assert "cds-services" not in response.get_data(as_text=True)
        app.extensions["cds_db"].dispose()


def test_dashboard_user_command_makes_a_line_the_server_accepts(build, tmp_path, monkeypatch, capsys) -> None:
    import io

    from cds_service.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough secret\n"))
    assert main(["dashboard-user", "carla"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("carla:$argon2id$") and "a long enough secret" not in line
    users = tmp_path / "users"
    users.write_text(line + "\n")
    client = build(profile="production", dashboard_users_path=str(users), dashboard_auth="basic")
    assert client.get(PAGE, headers=basic("carla", "a long enough secret")).status_code == 200
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["dashboard-user", "carla"]) == 2
    assert main(["dashboard-user", "bad:name"]) == 2
