"""Issue 2, point 9: /healthz (process up) and /readyz (database reachable)."""

from __future__ import annotations

from support import free_port, install_log_capture, start_server


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_when_the_database_answers(client, backend):
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "database": "ok", "jobs": "ok"}  # no due job waits


def test_health_needs_no_credentials_and_ignores_bad_ones(client):
    for path in ("/healthz", "/readyz"):
        assert client.get(path, headers={"Authorization": "Bearer garbage"}).status_code == 200


def test_readyz_is_503_when_the_database_is_unreachable(tmp_path, logs):
    install_log_capture()
    start = len(logs.lines)
    down = start_server(data_dir=tmp_path, database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")
    try:
        with down.client() as client:
            # the process is up ...
            assert client.get("/healthz").status_code == 200
            # ... but not ready
            response = client.get("/readyz")
            assert response.status_code == 503, response.text
            assert response.json() == {"status": "unavailable", "database": "unreachable"}
            assert response.headers["retry-after"] == "5"
            assert "Traceback" not in response.text and "psycopg" not in response.text
            assert "127.0.0.1" not in response.text
            # and again (no cached verdict either way)
            assert client.get("/readyz").status_code == 503
            # a database-backed route fails cleanly too: never a traceback or driver text in the body
            failing = client.post("/v1/auth/token", data={"username": "u", "password": "p"})
            assert failing.status_code >= 500
            assert "psycopg" not in failing.text and "Traceback" not in failing.text
    finally:
        down.stop()
    warning = "\n".join(logs.lines[start:])
    assert "database check failed" in warning


def test_readyz_is_503_when_the_sqlite_file_cannot_be_opened(tmp_path):
    missing_dir = tmp_path / "does" / "not" / "exist"
    down = start_server(data_dir=tmp_path, database_url=f"sqlite:///{missing_dir / 'strongroom.db'}")
    try:
        with down.client() as client:
            assert client.get("/healthz").status_code == 200
            assert client.get("/readyz").status_code == 503
    finally:
        down.stop()
