"""Users, team roles and tokens, as people use them through `yard` against a real server.

One server for the module (each test makes its own users), and one more that listens on
127.0.0.2: a server that is not this machine's as far as the CLI can tell, so it finds no
token of its own there, only what `yard login` stored.
"""

from __future__ import annotations

import json
import stat
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from tests.conftest import REPO, YARD, Server, processes_under, shared_server, wait_for
from trainyard.backends.local import free_port
from trainyard.store import Store
from trainyard.store.auth_tables import TokenRow
from trainyard.store.base import utcnow


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with shared_server(tmp_path_factory, "identity") as (server, _):
        yield server


@pytest.fixture(autouse=True)
def own_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every `yard` here keeps `yard login`'s tokens under this test's own directory, and no
    TRAINYARD_TOKEN of the shell running the tests leaks in."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("TRAINYARD_TOKEN", raising=False)
    return tmp_path / "config"


def yard_as(server: Server, token: str | None, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`yard ...` with `token` in TRAINYARD_TOKEN (None: whatever the CLI finds by itself)."""
    full = {**server.env, **env, **({"TRAINYARD_TOKEN": token} if token else {})}
    return subprocess.run([*YARD, *args], env=full, capture_output=True, text=True, timeout=120, cwd=REPO)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def made_token(result: subprocess.CompletedProcess[str]) -> str:
    """The token `yard tokens create` printed: the last word of its last line."""
    token = ok(result).strip().splitlines()[-1].split()[-1]
    assert token.startswith("tyu_"), result.stdout
    return token


def user_in(server: Server, name: str, team: str, role: str) -> str:
    """A new user with `role` in `team`, and their token."""
    ok(server.yard("users", "create", name, "--email", f"{name}@example.org"))
    ok(server.yard("teams", "add-member", team, name, "--role", role))
    return made_token(server.yard("tokens", "create", "--user", name, "--name", "laptop", "--expires", "30d"))


def job_file(tmp_path: Path, team: str) -> Path:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "main.py").write_text("print('ran')\n")
    spec = {"name": f"hello-{team}", "team": team, "entrypoint": ["python", "main.py"], "code": "code",
            "resources": {"workers": 1, "cpus_per_worker": 0.5, "memory_gb": 0.5}}
    path = tmp_path / f"{team}.json"
    path.write_text(json.dumps(spec))
    return path


def test_a_member_submits_to_her_team_only_and_sees_only_its_jobs(srv: Server, tmp_path: Path) -> None:
    theirs = ok(srv.yard("submit", str(job_file(tmp_path, "other")), "-q")).strip()
    alice = user_in(srv, "alice", "vision", "member")

    who = ok(yard_as(srv, alice, "whoami"))
    assert "alice (user, not a platform admin)" in who and "vision" in who and "member" in who
    mine = ok(yard_as(srv, alice, "submit", str(job_file(tmp_path, "vision")), "-q")).strip()
    refused = one_line_error(yard_as(srv, alice, "submit", str(job_file(tmp_path, "other")), "-q"))
    assert "may not submit jobs to team 'other'" in refused and "you may submit to vision" in refused

    listed = ok(yard_as(srv, alice, "jobs"))
    assert mine in listed and theirs not in listed
    assert theirs in ok(srv.yard("jobs"))  # the platform admin sees every team's
    assert "no team 'other'" in one_line_error(yard_as(srv, alice, "teams", "members", "other"))
    assert "alice" in ok(yard_as(srv, alice, "teams", "members", "vision"))


def test_losing_a_role_or_the_token_counts_at_once(srv: Server, tmp_path: Path) -> None:
    bob = user_in(srv, "bob", "vision", "member")
    spec = str(job_file(tmp_path, "vision"))
    ok(yard_as(srv, bob, "submit", spec, "-q"))

    ok(srv.yard("teams", "remove-member", "vision", "bob"))
    # in no team now, bob is refused at the first write `yard submit` makes: uploading the code
    assert "takes the member role" in one_line_error(yard_as(srv, bob, "submit", spec, "-q"))
    ok(srv.yard("teams", "add-member", "vision", "bob", "--role", "member"))
    ok(yard_as(srv, bob, "submit", spec, "-q"))

    token_id = bob.split("_")[1]
    assert "revoked" in ok(yard_as(srv, bob, "tokens", "revoke", token_id))  # one's own token
    line = one_line_error(yard_as(srv, bob, "jobs"))
    assert "refused the token in TRAINYARD_TOKEN" in line and "yard login --server" in line
    listed = ok(srv.yard("tokens", "list", "--user", "bob"))
    assert token_id in listed and "revoked" in listed


def test_an_expired_token_is_refused(srv: Server) -> None:
    carol = user_in(srv, "carol", "vision", "viewer")
    ok(yard_as(srv, carol, "jobs"))
    store = Store(f"sqlite:///{srv.home / 'trainyard.db'}")
    try:
        with store.session() as s:  # as if its 30 days had passed
            s.execute(update(TokenRow).where(TokenRow.id == carol.split("_")[1])
                      .values(expires_at=utcnow() - timedelta(seconds=1)))
    finally:
        store.close()
    # another process changed the store: the server's cache of resolved tokens lives 2 s at most
    line = wait_for(lambda: (r := yard_as(srv, carol, "jobs")).returncode != 0 and one_line_error(r), 10,
                    what="the expired token to be refused")
    assert "unknown, expired or revoked" in line
    assert "expired" in ok(srv.yard("tokens", "list", "--user", "carol"))


def test_a_viewer_cannot_add_members_and_a_team_admin_can(srv: Server) -> None:
    dave = user_in(srv, "dave", "vision", "viewer")
    erin = user_in(srv, "erin", "vision", "admin")
    ok(srv.yard("users", "create", "frank"))
    line = one_line_error(yard_as(srv, dave, "teams", "add-member", "vision", "frank", "--role", "member"))
    assert "takes the admin role in team 'vision'" in line
    assert "is member of team vision" in ok(yard_as(srv, erin, "teams", "add-member", "vision", "frank"))
    assert "platform admin" in one_line_error(yard_as(srv, erin, "users", "create", "grace"))
    # a team admin manages only their own team
    assert "no team 'other'" in one_line_error(yard_as(srv, erin, "teams", "add-member", "other", "frank"))


def test_a_service_token_works_for_its_team_only(srv: Server, tmp_path: Path) -> None:
    admin_of_vision = user_in(srv, "heidi", "vision", "admin")
    made = yard_as(srv, admin_of_vision, "tokens", "create", "--service", "ci", "--team", "vision",
                   "--role", "member", "--name", "ci")
    ci = made_token(made)
    who = ok(yard_as(srv, ci, "whoami"))
    assert "ci (service" in who and "vision" in who
    ok(yard_as(srv, ci, "submit", str(job_file(tmp_path, "vision")), "-q"))
    assert "may not submit jobs to team 'other'" in one_line_error(
        yard_as(srv, ci, "submit", str(job_file(tmp_path, "other")), "-q"))
    assert "ci" in ok(yard_as(srv, admin_of_vision, "teams", "members", "vision"))
    # the team's admin sees and revokes the team's service tokens
    token_id = ci.split("_")[1]
    assert token_id in ok(yard_as(srv, admin_of_vision, "tokens", "list", "--user", "ci"))
    ok(yard_as(srv, admin_of_vision, "tokens", "revoke", token_id))
    one_line_error(yard_as(srv, ci, "whoami"))


def test_a_token_carries_at_most_its_owners_roles(srv: Server) -> None:
    ivan = user_in(srv, "ivan", "vision", "member")
    resp = srv.client(ivan)._http.post("/v1/tokens", json={"name": "more", "scopes": {"vision": "admin"}})
    assert resp.status_code == 403 and "above what 'ivan' holds" in resp.json()["detail"]
    viewer = made_token(yard_as(srv, ivan, "tokens", "create", "--scope", "vision=viewer", "--name", "ro"))
    # made with a viewer-scoped token, a new token is no wider than it
    again = made_token(yard_as(srv, viewer, "tokens", "create", "--name", "again"))
    assert srv.client(again).whoami()["roles"] == {"vision": "viewer"}
    # a user makes tokens for no one else
    resp = srv.client(ivan)._http.post("/v1/tokens", json={"name": "x", "user": "admin"})
    assert resp.status_code == 403


def test_tokens_are_shown_once_and_stored_only_as_digests(srv: Server) -> None:
    ok(srv.yard("users", "create", "judy"))
    result = srv.yard("tokens", "create", "--user", "judy", "--name", "laptop", "--expires", "12h")
    token = made_token(result)
    assert srv.client(token).whoami()["name"] == "judy"
    secret = token.split("_", 2)[2]

    listed = ok(srv.yard("tokens", "list"))
    assert token.split("_")[1] in listed and secret not in listed
    assert secret not in srv.http.get("/v1/tokens").text
    for f in srv.home.glob("trainyard.db*"):
        data = f.read_bytes()
        assert token.encode() not in data and secret.encode() not in data, f


@pytest.mark.parametrize(("args", "field"), [
    (("users", "create", "Not_A_Name"), "name"),
    (("users", "create", "kim", "--email", "not-an-email"), "email"),
    (("tokens", "create", "--expires", "400d"), "expires"),
    (("tokens", "create", "--expires", "5 weeks"), "expires"),
    (("tokens", "create", "--name", "x" * 65), "name"),
    (("teams", "add-member", "vision", "kim", "--role", "owner"), "--role"),
    (("tokens", "create", "--scope", "vision"), "--scope"),
])
def test_bad_input_is_refused_naming_the_field(srv: Server, args: tuple[str, ...], field: str) -> None:
    assert one_line_error(srv.yard(*args)).startswith(f"error: {field}: ")


def test_unknown_and_existing_users(srv: Server) -> None:
    assert "no user 'nobody'" in one_line_error(srv.yard("teams", "add-member", "vision", "nobody"))
    assert srv.http.post("/v1/tokens", json={"user": "nobody"}).status_code == 404
    ok(srv.yard("users", "create", "mallory"))
    assert "exists already" in one_line_error(srv.yard("users", "create", "mallory"))
    assert srv.http.post("/v1/users", json={"name": "mallory"}).status_code == 409
    bad_role = srv.http.put("/v1/teams/vision/members/mallory", json={"role": "boss"})
    assert bad_role.status_code == 422 and bad_role.json()["errors"][0]["field"] == "role"
    listed = ok(srv.yard("users", "list"))
    assert "mallory" in listed and "admin" in listed


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server at 127.0.0.2: not local to the CLI, so only TRAINYARD_TOKEN or `yard login` reach it."""

    class Remote(Server):
        @property
        def url(self) -> str:
            return f"http://127.0.0.2:{self.port}"

    root = tmp_path_factory.mktemp("remote")
    (root / "home").mkdir()
    server = Remote(home=root / "home", port=free_port(), extra_args=["--host", "127.0.0.2", "--cpus", "2"])
    server.start()
    try:
        yield server
    finally:
        server.stop()
        for p in processes_under(root):
            p.kill()


def test_a_remote_server_needs_a_login_which_is_kept_private(remote: Server, own_config: Path) -> None:
    line = one_line_error(yard_as(remote, None, "jobs"))
    assert line.startswith(f"error: no token for {remote.url}: log in with `yard login --server {remote.url}")

    ok(yard_as(remote, remote.token, "users", "create", "olivia"))
    ok(yard_as(remote, remote.token, "teams", "add-member", "vision", "olivia", "--role", "viewer"))
    token = made_token(yard_as(remote, remote.token, "tokens", "create", "--user", "olivia"))

    refused = one_line_error(yard_as(remote, None, "login", "--server", remote.url, "--token", token + "x"))
    assert "refused that token" in refused
    assert not (own_config / "trainyard" / "credentials.json").exists()

    assert "as olivia (user)" in ok(yard_as(remote, None, "login", "--server", remote.url, "--token", token))
    stored = own_config / "trainyard" / "credentials.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert json.loads(stored.read_text()) == {remote.url: token}
    assert "olivia (user" in ok(yard_as(remote, None, "whoami"))
    assert "platform admin" in one_line_error(yard_as(remote, None, "users", "list"))
    ok(yard_as(remote, None, "jobs"))

    ok(yard_as(remote, remote.token, "tokens", "revoke", token.split("_")[1]))
    line = one_line_error(yard_as(remote, None, "jobs"))
    assert line == (f"error: the server at {remote.url} refused this token (unknown, expired or revoked): log "
                    f"in again with `yard login --server {remote.url} --token <token>` (a platform or team "
                    "admin makes one with `yard tokens create`)")
