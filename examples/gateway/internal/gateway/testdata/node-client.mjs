// node-client.mjs drives the gateway with the official Node SDK (npm
// "openai") and prints, as one JSON line, what the client saw: requests by
// status, tokens, streams with a first token. Run by TestNodeSDK with
// NODE_PATH pointing at a folder where `npm install openai` ran.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.GATEWAY_URL + "/v1", apiKey: "node-key", maxRetries: 0 });
const model = process.env.GATEWAY_MODEL;
const seen = { ok: 0, notFound: 0, input: 0, output: 0, firstTokens: 0 };
const messages = [{ role: "user", content: "Why is the sky blue?" }];

async function stream(includeUsage) {
  const opts = { model, messages, stream: true, max_tokens: 12 };
  if (includeUsage) opts.stream_options = { include_usage: true };
  const s = await client.chat.completions.create(opts);
  let chunks = 0, usage = null;
  for await (const ch of s) {
    for (const c of ch.choices ?? []) if (c.delta?.content) chunks++;
    if (ch.usage) usage = ch.usage;
  }
  seen.ok++;
  if (chunks > 0) seen.firstTokens++;
  if (usage) { seen.input += usage.prompt_tokens; seen.output += usage.completion_tokens; }
  else seen.output += chunks;
}

async function plain() {
  const r = await client.chat.completions.create({ model, messages, max_tokens: 5 });
  seen.ok++;
  seen.input += r.usage.prompt_tokens;
  seen.output += r.usage.completion_tokens;
}

async function unknown() {
  try {
    await client.chat.completions.create({ model: "no-such-model", messages });
  } catch (e) {
    if (e.status === 404 && e.code === "model_not_found") { seen.notFound++; return; }
    throw e;
  }
  throw new Error("unknown model answered");
}

await Promise.all([stream(true), stream(true), stream(false), plain(), unknown()]);
const models = await client.models.list();
if (!models.data.some((m) => m.id === model)) throw new Error("model not listed");
console.log(JSON.stringify(seen));
