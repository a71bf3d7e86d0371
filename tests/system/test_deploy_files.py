"""Issue 22 item 11: the deployment files are valid and say what the README promises.

* ``compose.yaml``: ``docker-compose config -q`` (Debian's docker-compose, no daemon needed) accepts it, and
  a YAML reading checks the shape: two ``serve`` replicas behind nginx, PostgreSQL, Redis, a profiled
  ``worker``, one master-key volume, health checks everywhere.
* ``Dockerfile``: a non-root user, the data volume ``/var/lib/strongroom``, the pinned requirements, and a
  ``HEALTHCHECK`` that, run as written against a live server, passes on ``/readyz`` and fails without one.
* ``deploy/strongroom.service``: ``systemd-analyze verify`` finds nothing to say, and ``systemd-analyze
  security`` rates it well exposed at most 2.0 (hardened).

A missing tool (docker-compose, systemd-analyze) fails the test when ``CI=true`` (``.ci/run`` installs them)
and skips it loudly elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import ROOT, free_port

COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
UNIT = ROOT / "deploy" / "strongroom.service"
NGINX = ROOT / "deploy" / "nginx.conf"
DATA = "/var/lib/strongroom"
STRONGROOM_SERVICES = ("migrate", "serve-1", "serve-2", "worker")


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        message = f"{name.upper()} NOT INSTALLED: this deployment check did not run (apt-get install {name})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " - under CI=true a missing tool is a failure (.ci/run installs it)")
        pytest.skip(message)
    return found


# --- compose.yaml ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_docker_compose_accepts_the_file() -> None:
    docker_compose = tool("docker-compose")
    env = {**os.environ, "POSTGRES_PASSWORD": "x"}
    checked = subprocess.run([docker_compose, "-f", str(COMPOSE), "config", "-q"], env=env, capture_output=True,
                             text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stderr
    services = subprocess.run([docker_compose, "-f", str(COMPOSE), "config", "--services"], env=env,
                              capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert set(services) == {"migrate", "serve-1", "serve-2", "worker", "nginx", "postgres", "redis"}
    # the database password is never defaulted: without it the file is refused
    bare = {k: v for k, v in os.environ.items() if k != "POSTGRES_PASSWORD"}
    refused = subprocess.run([docker_compose, "-f", str(COMPOSE), "config", "-q"], env=bare, capture_output=True,
                             text=True, timeout=60, check=False)
    assert refused.returncode != 0 and "POSTGRES_PASSWORD" in refused.stderr


def _env(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {k: str(v) for k, v in environment.items()}


def test_compose_is_the_scale_out_shape(compose: dict[str, Any]) -> None:
    services = compose["services"]
    serve = [name for name, s in services.items() if s.get("command", [None])[0] == "serve"]
    assert sorted(serve) == ["serve-1", "serve-2"]
    for name in STRONGROOM_SERVICES:
        service, env = services[name], _env(services[name])
        assert service.get("build") == "." and "strongroom" in service["image"], name
        assert env["STRONGROOM_DATABASE_URL"].startswith("postgresql+psycopg://") and "@postgres:" in \
            env["STRONGROOM_DATABASE_URL"], name
        assert env["STRONGROOM_REDIS_URL"].startswith("redis://redis:"), name
        # one master key for every process: the same named volume on the data directory
        assert f"strongroom-data:{DATA}" in service["volumes"] and env["STRONGROOM_DATA_DIR"] == DATA, name
    assert "strongroom-data" in compose["volumes"] and "postgres-data" in compose["volumes"]
    assert services["migrate"]["command"] == ["db", "upgrade"]
    for name in ("serve-1", "worker"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
    # serve-2 starts after serve-1 answers: one replica creates the bootstrap admin of a new database
    assert services["serve-2"]["depends_on"]["serve-1"] == {"condition": "service_healthy"}
    # the worker is there, off by default
    assert services["worker"]["command"] == ["worker"] and services["worker"]["profiles"] == ["worker"]
    # nginx is the only way in, and the replicas believe its X-Forwarded-For only
    nginx = services["nginx"]
    address = nginx["networks"]["backend"]["ipv4_address"]
    for name in serve:
        assert "ports" not in services[name], name
        assert json.loads(_env(services[name])["STRONGROOM_TRUSTED_PROXIES"]) == [f"{address}/32"]
    assert any(str(p).endswith(":8080") for p in nginx["ports"])
    conf = NGINX.read_text()
    assert "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in nginx["volumes"]
    assert re.findall(r"^\s*server (serve-\d):8000", conf, re.MULTILINE) == serve
    assert "listen 8080;" in conf and "proxy_set_header X-Forwarded-For $remote_addr;" in conf
    assert services["postgres"]["image"].startswith("postgres:") and services["redis"]["image"].startswith("redis:")


def test_every_long_running_service_has_a_health_check(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("serve-1", "serve-2", "nginx", "postgres", "redis"):
        check = services[name].get("healthcheck", {})
        assert check.get("test") and check.get("interval"), name
    for name in ("serve-1", "serve-2", "nginx"):
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"]), name
    # who waits for whom: nothing starts against a database or Redis that does not answer yet
    for name in ("migrate", "serve-1", "worker"):
        assert services[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}, name
    assert services["nginx"]["depends_on"] == {"serve-1": {"condition": "service_healthy"},
                                               "serve-2": {"condition": "service_healthy"}}


def test_the_compose_health_check_runs(compose: dict[str, Any], server: Any) -> None:
    """serve's health check command, run as written (its port aside) against a live server, passes."""
    test = compose["services"]["serve-1"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    port = server.url.rsplit(":", 1)[1]
    command = [sys.executable if part == "python" else part.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
               for part in test[1:]]
    assert subprocess.run(command, timeout=30, check=False).returncode == 0


# --- Dockerfile --------------------------------------------------------------------------------------

def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_dockerfile_runs_as_a_user_with_its_data_on_a_volume() -> None:
    instructions = _instructions()
    final = instructions[max(i for i, (word, _) in enumerate(instructions) if word == "FROM"):]
    users = [rest for word, rest in final if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any(word == "VOLUME" and DATA in rest for word, rest in final)
    assert any(word == "ENV" and f"STRONGROOM_DATA_DIR={DATA}" in rest for word, rest in final)
    assert any(word == "ENTRYPOINT" and json.loads(rest) == ["strongroom"] for word, rest in final)
    assert any(word == "CMD" and json.loads(rest)[0] == "serve" for word, rest in final)
    runs = " ".join(rest for word, rest in instructions if word == "RUN")
    assert "-r requirements.txt" in runs and "--no-deps" in runs  # the pins, then the package without deps
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "*" in ignored and "!strongroom/" in ignored and "!requirements.txt" in ignored


def test_dockerfile_health_check_probes_readyz(server: Any) -> None:
    (check,) = [rest for word, rest in _instructions() if word == "HEALTHCHECK"]
    options, _, command = check.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = json.loads(command) if command.strip().startswith("[") else shlex.split(command)
    assert "/readyz" in " ".join(argv)
    argv = [sys.executable if part == "python" else part for part in argv]
    port = server.url.rsplit(":", 1)[1]
    ready = subprocess.run(argv, env={**os.environ, "STRONGROOM_PORT": port}, timeout=30, check=False)
    assert ready.returncode == 0
    nobody = subprocess.run(argv, env={**os.environ, "STRONGROOM_PORT": str(free_port())}, capture_output=True,
                            timeout=30, check=False)
    assert nobody.returncode != 0


# --- systemd -----------------------------------------------------------------------------------------

def _unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_unit_is_hardened() -> None:
    unit = _unit_settings()
    assert unit.get("DynamicUser") == ["yes"] or unit.get("User")
    assert unit["StateDirectory"] == ["strongroom"] and unit["StateDirectoryMode"] == ["0700"]
    assert unit["Environment"].count(f"STRONGROOM_DATA_DIR={DATA}") == 1
    for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                       ("PrivateTmp", "yes"), ("UMask", "0077"), ("CapabilityBoundingSet", "")):
        assert unit.get(key) == [value], key
    assert unit["ExecStart"][0].endswith("/strongroom serve")


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    """``systemd-analyze verify`` (the unit's commands pointed at this environment's ``strongroom``) has
    nothing to say, and ``systemd-analyze security`` rates its exposure at most 2.0."""
    analyze = tool("systemd-analyze")
    unit = tmp_path / "strongroom.service"
    unit.write_text(UNIT.read_text().replace("/opt/strongroom/bin/", f"{Path(sys.executable).parent}/"))
    verified = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60,
                              check=False)
    assert verified.returncode == 0 and not (verified.stdout + verified.stderr).strip(), \
        verified.stdout + verified.stderr
    security = subprocess.run([analyze, "security", "--offline=yes", "--no-pager", str(unit)], capture_output=True,
                              text=True, timeout=60, check=False)
    exposure = re.search(r"Overall exposure level for strongroom\.service: ([\d.]+)", security.stdout)
    assert exposure, security.stdout[-2000:] + security.stderr
    assert float(exposure.group(1)) <= 2.0, security.stdout[-3000:]
