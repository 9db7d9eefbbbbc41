// Official OpenAI Node SDK (system Node 20) against clawbridge's OpenAI surface
// beyond chat completions: models.list / models.retrieve, responses.create
// (non-stream and stream: true), the responses.stream helper (finalResponse),
// wrong key -> AuthenticationError 401. Every check asserts the fake LLM's
// configured reply. Chat completions through this SDK: sdk_node.mjs.
import OpenAI from "openai";

const BRIDGE = (process.env.E2E_BRIDGE_URL || "http://127.0.0.1:18800").replace(/\/$/, "");
const FAKE = (process.env.E2E_FAKE_URL || "http://127.0.0.1:18790").replace(/\/$/, "");
const TOKEN = process.env.E2E_TOKEN || "test-token";
const MODEL = "openclaw/main";
const MODEL_IDS = ["openclaw", "openclaw/default", "openclaw/main"]; // the kit's config: one agent, `main`
let passed = 0, failed = 0;
function check(name, ok, detail = "") {
  if (ok) { passed++; console.log(`PASS clients-node: ${name}${detail ? ` (${String(detail).slice(0, 140)})` : ""}`); }
  else { failed++; console.log(`FAIL clients-node: ${name}${detail ? `: ${detail}` : ""}`); }
}
async function guard(name, fn) {
  try { await fn(); } catch (e) { check(name, false, `${e.constructor.name}: ${String(e.message).slice(0, 300)}`); }
}

const cfg = await (await fetch(`${FAKE}/_fake/config`, { method: "POST", body: "{}" })).json();
const want = cfg.reply.join("");
const pkg = (await import("openai/version")).VERSION;
console.log(`INFO clients-node: node ${process.version}, openai ${pkg}, ${BRIDGE}, expecting reply ${JSON.stringify(want)} (from /_fake/config)`);
const client = new OpenAI({ baseURL: `${BRIDGE}/v1`, apiKey: TOKEN, maxRetries: 0, timeout: 90_000 });

await guard("models", async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  check("models.list: ids", JSON.stringify(ids) === JSON.stringify(MODEL_IDS), JSON.stringify(ids));
  const m = await client.models.retrieve(MODEL);
  check("models.retrieve(openclaw/main)", m.id === MODEL && m.object === "model" && m.owned_by === "openclaw",
    `${m.id} ${m.object} ${m.owned_by}`);
  try {
    await client.models.retrieve("openclaw/nosuch");
    check("models.retrieve(unknown): NotFoundError", false, "no error thrown");
  } catch (e) {
    check("models.retrieve(unknown): NotFoundError 404", e instanceof OpenAI.NotFoundError && e.status === 404,
      `${e.constructor.name} ${e.status}`);
  }
});

await guard("responses.create", async () => {
  const r = await client.responses.create({ model: MODEL, input: "hi from the node sdk" });
  check("responses.create: output_text", r.output_text === want, JSON.stringify(r.output_text));
  check("responses.create: id resp_, status completed, model echoed",
    r.id.startsWith("resp_") && r.status === "completed" && r.model === MODEL, `${r.id} ${r.status} ${r.model}`);
});

await guard("responses.create(stream: true)", async () => {
  const s = await client.responses.create({ model: MODEL, input: "hi from a node raw stream", stream: true });
  const types = [], deltas = []; let final = null;
  for await (const ev of s) {
    types.push(ev.type);
    if (ev.type === "response.output_text.delta") deltas.push(ev.delta);
    if (ev.type === "response.completed") final = ev.response;
  }
  check("responses.create(stream: true): joined deltas", deltas.join("") === want,
    `${JSON.stringify(deltas.join(""))} in ${deltas.length} deltas`);
  check("responses.create(stream: true): created first, completed last",
    types[0] === "response.created" && types.at(-1) === "response.completed", `${types[0]} ... ${types.at(-1)}`);
  check("responses.create(stream: true): completed response output", final?.output?.[0]?.content?.[0]?.text === want,
    JSON.stringify(final?.output?.[0]?.content));
});

await guard("responses.stream", async () => {
  const s = client.responses.stream({ model: MODEL, input: "hi from the node stream helper", instructions: "Be brief." });
  const deltas = [];
  s.on("response.output_text.delta", (ev) => deltas.push(ev.delta));
  const final = await s.finalResponse();
  check("responses.stream: deltas", deltas.join("") === want, JSON.stringify(deltas.join("")));
  // (this SDK's stream helper does not add the `output_text` convenience field: read the output item)
  const text = (final.output ?? []).flatMap((o) => o.content ?? []).map((c) => c.text ?? "").join("");
  check("responses.stream: finalResponse", text === want && final.status === "completed",
    `${JSON.stringify(text)} ${final.status}`);
});

const bad = new OpenAI({ baseURL: `${BRIDGE}/v1`, apiKey: "wrong-key", maxRetries: 0, timeout: 30_000 });
for (const [label, call] of [["responses.create", () => bad.responses.create({ model: MODEL, input: "hi" })],
                             ["models.list", () => bad.models.list()]]) {
  try {
    await call();
    check(`wrong key ${label}: AuthenticationError`, false, "no error thrown");
  } catch (e) {
    check(`wrong key ${label}: AuthenticationError 401`, e instanceof OpenAI.AuthenticationError && e.status === 401,
      `${e.constructor.name} status ${e.status}`);
  }
}
console.log(`clients-node: ${failed ? "FAIL" : "PASS"} (${passed} passed, ${failed} failed, 0 skipped)`);
process.exit(failed ? 1 : 0);
