"""The README's "Protect your own services" curl call of the verify API works as written. (The nginx
block and the rules file run verbatim in test_nginx.py; the Traefik middleware is checked against a
live answer in test_forward_auth.py.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from support import ROOT
from support.factories import make_key

SECTION = (ROOT / "README.md").read_text().split("## Protect your own services", 1)[1].split("\n## ", 1)[0]


def block(lang: str) -> str:
    return SECTION.split(f"```{lang}\n", 1)[1].split("```", 1)[0]


def test_the_curl_example(server, client, users):
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("CURL NOT INSTALLED: the README's curl example did not run")
    verifier = make_key(client, users.create(admin=True), scopes=["verify"])
    key = make_key(client, users.create())
    script = "\n".join(line for line in block("sh").splitlines() if not line.startswith("#"))
    script = script.replace("localhost:8000", server.url.removeprefix("http://"))
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "VERIFY_KEY": verifier["secret"], "CLIENT_KEY": key["secret"]})
    assert done.returncode == 0, done.stderr
    verdict = json.loads(done.stdout)
    assert verdict["valid"] is True and verdict["key_id"] == key["key_id"]
    # the example's answer shows every field the API answers
    shown = block("sh").split("# ", 1)[1]
    assert all(f'"{name}"' in shown for name in verdict), (sorted(verdict), shown)
