"""The Node.js receiver snippet in docs/receivers.md, run with the machine's `node` against
signatures made by the server's own signing code (engine/sender.py uses sign_v1)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from control.policy.signing import sign_v1

DOC = Path(__file__).resolve().parents[2] / "docs" / "receivers.md"
NODE = shutil.which("node")


def snippet(lang: str) -> str:
    found = re.search(rf"```{lang}\n(.*?)```", DOC.read_text(), re.S)
    assert found, f"no {lang} snippet in {DOC}"
    return found.group(1)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_the_node_snippet_accepts_what_mittr_signs_and_rejects_the_rest(tmp_path: Path) -> None:
    (tmp_path / "verify.js").write_text(snippet("javascript"))
    secret, body, now = "whsec_node-test", b'{"orderId":"ord_1"}', int(time.time())
    good = {"x-mittr-signature": sign_v1(secret.encode(), body), "x-mittr-timestamp": str(now)}
    cases = {
        "good": (body, good),
        "rotated": (body, {**good, "x-mittr-signature": "v1=" + "0" * 64 + " " + good["x-mittr-signature"]}),
        "tampered": (body + b" ", good),
        "wrong-secret": (body, {**good, "x-mittr-signature": sign_v1(b"other", body)}),
        "stale": (body, {**good, "x-mittr-timestamp": str(now - 301)}),
        "unsigned": (body, {"x-mittr-timestamp": str(now)}),
    }
    runner = (
        "const { verifyMittr } = require('./verify.js');\n"
        "const cases = JSON.parse(process.argv[2]);\n"
        "const out = {};\n"
        "for (const [name, [b64, headers]] of Object.entries(cases)) {\n"
        "  out[name] = verifyMittr(process.argv[3], Buffer.from(b64, 'base64'), headers);\n"
        "}\n"
        "console.log(JSON.stringify(out));\n"
    )
    (tmp_path / "run.js").write_text(runner)
    arg = json.dumps({k: [base64.b64encode(b).decode(), h] for k, (b, h) in cases.items()})
    assert NODE is not None
    out = subprocess.run([NODE, "run.js", arg, secret], cwd=tmp_path, check=True, capture_output=True,
                         text=True, timeout=30).stdout
    assert json.loads(out) == {"good": True, "rotated": True, "tampered": False, "wrong-secret": False,
                               "stale": False, "unsigned": False}


def test_the_go_snippet_uses_the_same_scheme() -> None:
    go = snippet("go")
    assert "hmac.Equal" in go and "X-Mittr-Timestamp" in go and "sha256.New" in go
