// Calls the inference-server example with the official OpenAI Node SDK, as a
// Node user would: node openai_node.mjs, with OPENAI_BASE_URL set. Exits 0
// when every call gave what the server promises.
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const client = new OpenAI({ apiKey: 'unused', maxRetries: 0 });
const model = 'fake-llama-3-8b';

const m = await client.models.retrieve(model);
assert.equal(m.id, model);
await assert.rejects(client.models.retrieve('gpt-9'), (err) => err.status === 404 && err.code === 'model_not_found');

const c = await client.completions.create({ model, prompt: 'Why is the sky blue?', max_tokens: 5 });
assert.equal(c.choices[0].finish_reason, 'length');
assert.equal(c.usage.completion_tokens, 5);

let streamed = '';
for await (const chunk of await client.completions.create({ model, prompt: 'Why is the sky blue?', max_tokens: 5, stream: true })) {
  streamed += chunk.choices[0]?.text ?? '';
}
assert.equal(streamed, c.choices[0].text);

// The Node SDK asks for base64 and decodes it.
const e = await client.embeddings.create({ model, input: ['the blue sky', 'red light'], dimensions: 16 });
assert.equal(e.data.length, 2);
assert.equal(e.data[0].embedding.length, 16);
const norm = e.data[0].embedding.reduce((s, x) => s + x * x, 0);
assert.ok(Math.abs(norm - 1) < 0.01, `|v|^2 = ${norm}`);

let chat = '';
const stream = await client.chat.completions.create({
  model, messages: [{ role: 'user', content: 'Why is the sky blue?' }], max_completion_tokens: 4, stream: true,
});
for await (const chunk of stream) {
  chat += chunk.choices[0]?.delta?.content ?? '';
}
assert.ok(chat.length > 0);
console.log('ok');
