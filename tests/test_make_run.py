"""What `make run` does, for real: `obol run` migrates a fresh SQLite file, loads the demo tenant
and serves the admin and the API; running it again adds no duplicate demo data."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from obol.demo.loader import API_KEY

pytestmark = pytest.mark.server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(data_dir: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "OBOL_DATA_DIR": str(data_dir), "OBOL_DEBUG": "0"}
    env.pop("OBOL_DATABASE_URL", None)  # make run uses the embedded SQLite default
    return subprocess.Popen(
        [sys.executable, "-m", "obol", "run", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _wait_until_up(process: subprocess.Popen, url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"obol run exited early:\n{process.stdout.read()}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail("obol run did not answer in time")


def _stop(process: subprocess.Popen) -> str:
    process.terminate()
    try:
        output, _ = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output


def test_make_run_serves_admin_and_api_docs_on_the_demo_data(tmp_path):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    for run in (1, 2):
        process = _serve(tmp_path, port)
        try:
            _wait_until_up(process, f"{base}/api/v1/docs")
            assert httpx.get(f"{base}/api/v1/docs").status_code == 200
            login = httpx.get(f"{base}/admin/login/")
            assert login.status_code == 200 and "csrfmiddlewaretoken" in login.text
            css = httpx.get(f"{base}/static/ninja/swagger-ui.css")
            assert css.status_code == 200  # the docs page's assets are served locally
            customers = httpx.get(f"{base}/api/v1/customers", headers={"Authorization": f"Bearer {API_KEY}"})
            assert customers.status_code == 200
            assert customers.json()["count"] == 50, f"run {run}"
            subscriptions = httpx.get(f"{base}/api/v1/subscriptions", params={"limit": 1},
                                      headers={"Authorization": f"Bearer {API_KEY}"})
            assert subscriptions.json()["count"] == 50
            plans = httpx.get(f"{base}/api/v1/plans", headers={"Authorization": f"Bearer {API_KEY}"})
            assert {p["code"] for p in plans.json()["items"]} >= {"mobile-s", "fibre-500"}
        finally:
            output = _stop(process)
        assert "http://127.0.0.1" in output and "/admin/" in output and "obol-demo" in output
        expected = "50 customers created" if run == 1 else "0 customers created, 50 already there"
        assert expected in output, output
