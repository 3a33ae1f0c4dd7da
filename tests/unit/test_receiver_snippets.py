"""The Node.js and Go receiver snippets in docs/receivers.md, run with the machine's `node` and
`go` against signatures made by the server's own signing code (engine/sender.py uses sign_v1)."""

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
GO = shutil.which("go")
EXPECTED = {"good": True, "rotated": True, "tampered": False, "wrong-secret": False, "stale": False,
            "unsigned": False}


def snippet(lang: str) -> str:
    found = re.search(rf"```{lang}\n(.*?)```", DOC.read_text(), re.S)
    assert found, f"no {lang} snippet in {DOC}"
    return found.group(1)


def signed_cases(secret: str) -> str:
    """The cases every snippet must decide alike, as JSON: name -> [base64 body, headers]."""
    body, now = b'{"orderId":"ord_1"}', int(time.time())
    good = {"x-mittr-signature": sign_v1(secret.encode(), body), "x-mittr-timestamp": str(now)}
    cases = {
        "good": (body, good),
        "rotated": (body, {**good, "x-mittr-signature": "v1=" + "0" * 64 + " " + good["x-mittr-signature"]}),
        "tampered": (body + b" ", good),
        "wrong-secret": (body, {**good, "x-mittr-signature": sign_v1(b"other", body)}),
        "stale": (body, {**good, "x-mittr-timestamp": str(now - 301)}),
        "unsigned": (body, {"x-mittr-timestamp": str(now)}),
    }
    return json.dumps({k: [base64.b64encode(b).decode(), h] for k, (b, h) in cases.items()})


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_the_node_snippet_accepts_what_mittr_signs_and_rejects_the_rest(tmp_path: Path) -> None:
    (tmp_path / "verify.js").write_text(snippet("javascript"))
    secret = "whsec_node-test"
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
    assert NODE is not None
    out = subprocess.run([NODE, "run.js", signed_cases(secret), secret], cwd=tmp_path, check=True,
                         capture_output=True, text=True, timeout=30).stdout
    assert json.loads(out) == EXPECTED


GO_RUNNER = """package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"

	"example.com/receiver/webhooks"
)

func main() {
	var cases map[string][2]json.RawMessage
	if err := json.Unmarshal([]byte(os.Args[1]), &cases); err != nil {
		panic(err)
	}
	out := map[string]bool{}
	for name, c := range cases {
		var b64 string
		var headers map[string]string
		json.Unmarshal(c[0], &b64)
		json.Unmarshal(c[1], &headers)
		body, _ := base64.StdEncoding.DecodeString(b64)
		h := http.Header{}
		for k, v := range headers {
			h.Set(k, v)
		}
		out[name] = webhooks.VerifyMittr(os.Args[2], body, h, 300*time.Second)
	}
	encoded, _ := json.Marshal(out)
	fmt.Println(string(encoded))
}
"""


@pytest.mark.skipif(GO is None, reason="go is not installed (Debian: apt-get install golang-go)")
def test_the_go_snippet_accepts_what_mittr_signs_and_rejects_the_rest(tmp_path: Path) -> None:
    (tmp_path / "go.mod").write_text("module example.com/receiver\n\ngo 1.19\n")
    (tmp_path / "webhooks").mkdir()
    (tmp_path / "webhooks" / "verify.go").write_text(snippet("go"))
    (tmp_path / "main.go").write_text(GO_RUNNER)
    secret = "whsec_go-test"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GOCACHE": str(tmp_path / ".cache"),
           "GOPATH": str(tmp_path / ".go"), "GOPROXY": "off", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
    assert GO is not None
    built = subprocess.run([GO, "build", "-o", "receiver", "."], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=180)
    assert built.returncode == 0, built.stderr
    out = subprocess.run([str(tmp_path / "receiver"), signed_cases(secret), secret], cwd=tmp_path, check=True,
                         capture_output=True, text=True, timeout=30).stdout
    assert json.loads(out) == EXPECTED
