"""``.baton/services.toml`` read into typed services: a good file's every field, the defaults, and each
kind of bad content refused with an error naming the file and the field (never run, never a shell);
the container's variables and the engine's argv built from them (the variables in a file, not argv)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from baton.environment import servicerun
from baton.environment.discover import Unreadable
from baton.environment.servicerun import ServiceFailed, _container_env, _run_argv
from baton.environment.services import Service, compose_services, fill, read_services

GOOD = """
[services.db]
image = "localhost/baton-postgres:dev"
port = 5432
port_env = "PGPORT"
env = { POSTGRES_PASSWORD = "s3cret", POSTGRES_USER = "app" }
data = "/var/lib/postgresql/data"
ready = ["pg_isready", "-h", "127.0.0.1", "-p", "${port}"]
ready_timeout = 90
export = { DATABASE_URL = "postgresql://app:s3cret@${host}:${port}/app", PGPORT = "${port}" }

[services.cache]
image = "localhost/baton-redis:dev"
env = { REDIS_PORT = "${port}", REDIS_PASSWORD = "x" }
port = 6379
"""


def test_a_good_file_reads_into_services() -> None:
    db, cache = read_services(GOOD)
    assert db == Service(
        name="db",
        image="localhost/baton-postgres:dev",
        source=".baton/services.toml",
        port=5432,
        port_env="PGPORT",
        env={"POSTGRES_PASSWORD": "s3cret", "POSTGRES_USER": "app"},
        data="/var/lib/postgresql/data",
        ready=("pg_isready", "-h", "127.0.0.1", "-p", "${port}"),
        ready_timeout=90.0,
        export={"DATABASE_URL": "postgresql://app:s3cret@${host}:${port}/app", "PGPORT": "${port}"},
    )
    assert fill(db.export["DATABASE_URL"], 41234) == "postgresql://app:s3cret@127.0.0.1:41234/app"
    assert (cache.data, cache.ready, cache.ready_timeout, cache.export, cache.port_env) == (
        None,
        (),
        60.0,
        {},
        None,
    )


def test_an_empty_file_has_no_services() -> None:
    assert read_services("") == ()


BAD = [
    ("[services.db\n", "is not TOML"),
    ('other = 1\n[services.db]\nimage = "x"\nport = 1\n', "unknown table or key 'other'"),
    ('[services.DB]\nimage = "x"\nport = 1\n', "service name 'DB'"),
    ('[services.db]\nimage = "x"\nport = 1\nprivileged = true\n', "services.db: unknown field 'privileged'"),
    ('[services.db]\nimage = "--privileged"\nport = 1\n', "services.db.image must be an image name"),
    ('[services.db]\nimage = "x; rm -rf /"\nport = 1\n', "services.db.image must be an image name"),
    ('[services.db]\nimage = "x"\n', "needs port (its port in the container), port_env or a ${port}"),
    ('[services.db]\nimage = "x"\nenv = { P = "${host}" }\n', "needs port (its port in the container)"),
    ('[services.db]\nimage = "x"\nport = 70000\n', "services.db.port must be a TCP port"),
    ('[services.db]\nimage = "x"\nport = true\n', "services.db.port must be a TCP port"),
    ('[services.db]\nimage = "x"\nport_env = "A B"\n', "services.db.port_env: 'A B' is not a variable"),
    (
        '[services.db]\nimage = "x"\nport = 1\nenv = { A = "a\\nb" }\n',
        "services.db.env.A must be one printable",
    ),
    ('[services.db]\nimage = "x"\nport = 1\nenv = { A = ["a"] }\n', "services.db.env.A must be a string"),
    ('[services.db]\nimage = "x"\nport = 1\nenv = { A = "${HOME}" }\n', "${HOME} is not one of ${port}"),
    (
        '[services.db]\nimage = "x"\nport = 1\nexport = { ANTHROPIC_BASE_URL = "http://evil" }\n',
        "not a variable",
    ),
    (
        '[services.db]\nimage = "x"\nport = 1\nexport = { PATH = "/tmp" }\n',
        "PATH is not a variable a service",
    ),
    ('[services.db]\nimage = "x"\nport = 1\nexport = { BATON_HOME = "/" }\n', "BATON_HOME is not a variable"),
    (
        '[services.db]\nimage = "x"\nport = 1\nexport = { https_proxy = "h" }\n',
        "https_proxy is not a variable",
    ),
    ('[services.db]\nimage = "x"\nport = 1\ndata = "data"\n', "services.db.data must be an absolute path"),
    ('[services.db]\nimage = "x"\nport = 1\ndata = "/a:/etc"\n', "services.db.data must be an absolute path"),
    (
        '[services.db]\nimage = "x"\nport = 1\ndata = "/a/../etc"\n',
        "services.db.data must be an absolute path",
    ),
    ('[services.db]\nimage = "x"\nport = 1\nready = "pg_isready"\n', "services.db.ready must be a list"),
    ('[services.db]\nimage = "x"\nport = 1\nready = ["--help"]\n', "services.db.ready: the command may not"),
    (
        '[services.db]\nimage = "x"\nport = 1\nready_timeout = 0\n',
        "services.db.ready_timeout must be seconds",
    ),
    ("services = 1\n", "services must be a table"),
    ("[services]\ndb = 1\n", "services.db must be a table"),
    ("".join(f'[services.s{i}]\nimage = "x"\nport = 1\n' for i in range(9)), "at most 8 services"),
]


@pytest.mark.parametrize(("text", "said"), BAD)
def test_bad_content_is_refused_naming_the_file_and_field(text: str, said: str) -> None:
    with pytest.raises(Unreadable) as caught:
        read_services(text)
    assert said in str(caught.value)
    assert str(caught.value).startswith(".baton/services.toml")


def test_the_container_is_told_its_port_through_its_variables_under_host_networking() -> None:
    db, cache = read_services(GOOD)
    assert _container_env(db, 41234, "host") == {
        "POSTGRES_PASSWORD": "s3cret",
        "POSTGRES_USER": "app",
        "PGPORT": "41234",
    }
    assert _container_env(cache, 41235, "host") == {"REDIS_PORT": "41235", "REDIS_PASSWORD": "x"}
    assert _container_env(db, 41234, "publish")["PGPORT"] == "5432"  # its own port, published
    (bare,) = read_services('[services.s]\nimage = "x"\nport = 1\n')
    with pytest.raises(ServiceFailed, match="needs port_env"):
        _container_env(bare, 41234, "host")
    (told,) = read_services('[services.s]\nimage = "x"\nport_env = "P"\n')
    with pytest.raises(ServiceFailed, match="needs port"):
        _container_env(told, 41234, "publish")


def test_the_engines_argv_names_the_image_after_a_double_dash_and_holds_no_variable(tmp_path: Path) -> None:
    db, _cache = read_services(GOOD)
    host = _run_argv("/usr/bin/podman", "baton-svc-x-db", tmp_path, db, 41234, "host")
    assert host[-2:] == ["--", "localhost/baton-postgres:dev"]
    assert host[host.index("--network") : host.index("--network") + 2] == ["--network", "host"]
    assert f"{tmp_path}/services/db/data:/var/lib/postgresql/data:U" in host
    assert not any("s3cret" in a for a in host)  # the password is in the env file, not argv
    env_file = tmp_path / "services" / "db.env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert "POSTGRES_PASSWORD=s3cret\n" in env_file.read_text()
    published = _run_argv("/usr/bin/docker", "baton-svc-x-db", tmp_path, db, 41234, "publish")
    assert "127.0.0.1:41234:5432" in published and "--network" not in published
    assert f"{tmp_path}/services/db/data:/var/lib/postgresql/data" in published  # docker: no :U


COMPOSE = """
services:
  app:
    build: .
  db:
    image: postgres:16
    environment:
      POSTGRES_PASSWORD: pw
      POSTGRES_DB: app
    ports: ["127.0.0.1:5432:5432"]
  cache_1:
    image: redis:7
    ports:
      - target: 6379
  built:
    build: ./x
  interpolated:
    image: mysql:8
    environment: ["MYSQL_ROOT_PASSWORD=${SECRET}"]
    ports: ["3306"]
  portless:
    image: busybox
  unlisted:
    image: nginx
    ports: ["80"]
"""


def test_a_dev_containers_compose_services_read_image_environment_and_port() -> None:
    devcontainer = {
        "dockerComposeFile": "../compose.yml",
        "service": "app",
        "runServices": ["app", "db", "cache_1", "built", "interpolated", "portless"],
    }
    read: list[str] = []

    def reader(path: str) -> bytes:
        read.append(path)
        return COMPOSE.encode()

    found = compose_services(devcontainer, reader, ".devcontainer")
    assert read == ["compose.yml"]  # relative to the devcontainer's directory, normalised
    db, cache = found.services
    assert (db.name, db.image, db.port, db.port_env, db.source) == (
        "db",
        "postgres:16",
        5432,
        None,
        "compose.yml",
    )
    assert db.env == {"POSTGRES_PASSWORD": "pw", "POSTGRES_DB": "app"}
    assert db.export == {"DB_HOST": "${host}", "DB_PORT": "${port}"}
    assert (cache.name, cache.port, cache.export["CACHE_1_PORT"]) == ("cache-1", 6379, "${port}")
    assert [s.split(" ")[0] for s in found.skipped] == ["built", "interpolated", "portless"]


def test_a_compose_file_that_is_not_yaml_is_refused_naming_it() -> None:
    with pytest.raises(Unreadable, match=r"compose\.yml is not YAML"):
        compose_services({"dockerComposeFile": ["compose.yml"]}, lambda _p: b"services: [", "")


def test_the_docs_example_reads() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "environment.md").read_text()
    example = page.split("```toml\n", 1)[1].split("```", 1)[0]
    assert [s.name for s in read_services(example)] == ["db", "cache"]


def test_a_restart_waits_a_moment_for_its_old_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """The old port of a service restarted on its data is kept when it frees within the wait (a
    container just removed may hold it a moment), and given up when something else keeps it."""
    monkeypatch.setattr(servicerun, "OLD_PORT_WAIT", 1.0)
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    port = held.getsockname()[1]
    assert not servicerun._free(port)
    assert not servicerun._free_soon(port), "a listener kept for the whole wait keeps its port"
    threading.Timer(0.3, held.close).start()
    began = time.monotonic()
    assert servicerun._free_soon(port), "freed within the wait: the old port is taken again"
    assert time.monotonic() - began < 1.0
