"""The official JavaScript client, ollama-js, against a real agent server (checklist item 39:
streams end with a done chunk it accepts, pull ends in success, errors reach it with their text)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.servers import REPO, AgentServer

OLLAMA_JS = REPO / ".test-clients/node_modules/ollama"

pytestmark = pytest.mark.skipif(not OLLAMA_JS.exists() or shutil.which("node") is None,
                                reason="ollama-js not installed: run `make test-clients` (make test does)")

SCRIPT = """
const { Ollama } = require(%(module)s);
const ollama = new Ollama({ host: %(host)s });
const out = {};
async function main() {
  let text = "", chunks = 0, done = 0;
  for await (const part of await ollama.chat({ model: "echo", stream: true,
                                               messages: [{ role: "user", content: "from javascript" }] })) {
    text += part.message.content; chunks += 1; if (part.done) done += 1;
  }
  out.chatStream = { text, chunks, done };
  const whole = await ollama.chat({ model: "echo", messages: [{ role: "user", content: "/count 3" }] });
  out.chat = { content: whole.message.content, eval_count: whole.eval_count };
  let generated = "";
  for await (const part of await ollama.generate({ model: "echo", prompt: "js generate", stream: true })) {
    generated += part.response;
  }
  out.generate = generated;
  out.tags = (await ollama.list()).models.map((m) => m.model);
  out.show = (await ollama.show({ model: "echo" })).capabilities;
  const statuses = [];
  for await (const part of await ollama.pull({ model: "echo", stream: true })) statuses.push(part.status);
  out.pull = statuses;
  try { await ollama.chat({ model: "nope", messages: [{ role: "user", content: "x" }] }); }
  catch (e) { out.unknown = { name: e.name, status: e.status_code, error: e.error }; }
  try {
    for await (const _ of await ollama.chat({ model: "echo", stream: true,
                                              messages: [{ role: "user", content: "/error-after js broke" }] })) {}
  } catch (e) { out.midStream = { name: e.name, message: e.message }; }
  console.log(JSON.stringify(out));
}
main().catch((e) => { console.error(e); process.exit(1); });
"""


def test_ollama_js_streams_lists_pulls_and_raises(echo_server: AgentServer, tmp_path: Path) -> None:
    script = tmp_path / "client.cjs"
    script.write_text(SCRIPT % {"module": json.dumps(str(OLLAMA_JS)), "host": json.dumps(echo_server.url)})
    result = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["chatStream"] == {"text": "You said: from javascript", "chunks": 5, "done": 1}
    assert out["chat"] == {"content": "w1 w2 w3", "eval_count": 3}
    assert out["generate"] == "You said: js generate"
    assert out["tags"] == ["echo:latest"] and "completion" in out["show"]
    assert out["pull"][-1] == "success"
    assert out["unknown"] == {"name": "ResponseError", "status": 404, "error": "model 'nope' not found"}
    # a last {"error": ...} line after the stream started: ollama-js throws a plain Error with it
    assert out["midStream"] == {"name": "Error", "message": "js broke"}
