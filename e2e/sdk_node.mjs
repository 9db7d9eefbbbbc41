// Official OpenAI Node SDK (system Node 20) against clawbridge:
// base_url = clawbridge /v1, apiKey = gateway token, model openclaw/main.
// Non-stream, stream (joined deltas), wrong key -> AuthenticationError 401.
import OpenAI from "openai";

const BRIDGE = (process.env.E2E_BRIDGE_URL || "http://127.0.0.1:18800").replace(/\/$/, "");
const FAKE = (process.env.E2E_FAKE_URL || "http://127.0.0.1:18790").replace(/\/$/, "");
const TOKEN = process.env.E2E_TOKEN || "test-token";
let passed = 0, failed = 0;
function check(name, ok, detail = "") {
  if (ok) { passed++; console.log(`PASS sdk-node: ${name}${detail ? ` (${String(detail).slice(0, 140)})` : ""}`); }
  else { failed++; console.log(`FAIL sdk-node: ${name}${detail ? `: ${detail}` : ""}`); }
}

const cfg = await (await fetch(`${FAKE}/_fake/config`, { method: "POST", body: "{}" })).json();
const want = cfg.reply.join("");
const pkg = (await import("openai/version")).VERSION;
console.log(`INFO sdk-node: node ${process.version}, openai ${pkg}, expecting reply ${JSON.stringify(want)} (from /_fake/config)`);
const client = new OpenAI({ baseURL: `${BRIDGE}/v1`, apiKey: TOKEN, maxRetries: 0, timeout: 90_000 });
const messages = [{ role: "user", content: "hi from the node sdk" }];

try {
  const r = await client.chat.completions.create({ model: "openclaw/main", messages });
  check("non-stream: content", r.choices[0].message.content === want, JSON.stringify(r.choices[0].message.content));
  check("non-stream: finish_reason stop", r.choices[0].finish_reason === "stop", r.choices[0].finish_reason);
  check("non-stream: model echoed, id chatcmpl_", r.model === "openclaw/main" && r.id.startsWith("chatcmpl_"), `${r.model} ${r.id}`);
} catch (e) { check("non-stream completion", false, `${e.constructor.name}: ${e.message}`); }

try {
  const stream = await client.chat.completions.create({ model: "openclaw/main", messages, stream: true,
    stream_options: { include_usage: true } });
  const parts = []; let finish = null; let usage = null; const roles = [];
  for await (const ch of stream) {
    if (ch.usage) usage = ch.usage;
    for (const c of ch.choices) {
      if (c.delta?.role) roles.push(c.delta.role);
      if (c.delta?.content) parts.push(c.delta.content);
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  check("stream: joined deltas", parts.join("") === want, `${JSON.stringify(parts.join(""))} in ${parts.length} deltas`);
  check("stream: role assistant first, finish stop", roles[0] === "assistant" && finish === "stop", `${roles} ${finish}`);
  check("stream: usage chunk", !!usage && usage.total_tokens > 0, JSON.stringify(usage));
} catch (e) { check("stream completion", false, `${e.constructor.name}: ${e.message}`); }

const bad = new OpenAI({ baseURL: `${BRIDGE}/v1`, apiKey: "wrong-key", maxRetries: 0, timeout: 30_000 });
for (const stream of [false, true]) {
  const label = stream ? "wrong key (stream)" : "wrong key";
  try {
    await bad.chat.completions.create({ model: "openclaw/main", messages, stream });
    check(`${label}: AuthenticationError`, false, "no error thrown");
  } catch (e) {
    check(`${label}: AuthenticationError 401`, e instanceof OpenAI.AuthenticationError && e.status === 401,
      `${e.constructor.name} status ${e.status}`);
  }
}
console.log(`sdk-node: ${failed ? "FAIL" : "PASS"} (${passed} passed, ${failed} failed, 0 skipped)`);
process.exit(failed ? 1 : 0);
