// Drive Kalshi's official TypeScript SDK (kalshi-typescript) against a live Strongroom server.
//
//   node kalshi_flow.mjs BASE_URL KEY_ID PRIVATE_KEY_PATH
//   (or KALSHI_BASE_URL, KALSHI_KEY_ID, KALSHI_PRIVATE_KEY_PATH in the environment)
//
// BASE_URL is the Kalshi base path, e.g. http://127.0.0.1:8000/trade-api/v2. KEY_ID/PRIVATE_KEY_PATH
// is an RSA key with the read, write and delete scopes, of a user at the premier usage level.
// Steps: generate -> list -> create (own public key) -> delete -> delete again (404) -> authenticate
// with the generated key (list; delete refused for lack of the delete scope) -> a request signed by
// the deleted key (401). Prints one JSON document with each step's status and data; asserts nothing
// itself (the pytest driver does), and exits 0 unless the script itself breaks.
//
// SDK quirk worked around here: BaseAPI installs its signing interceptor on the axios instance it
// is given, by default axios' GLOBAL instance, so with several ApiKeysApi objects on the global
// instance every request would be signed by whichever key registered first. Each client therefore
// gets its own axios instance (the SDK's documented third constructor argument).

import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import axios from 'axios';
import { ApiKeysApi, Configuration } from 'kalshi-typescript';

const [argBase, argKey, argPath] = process.argv.slice(2);
const baseUrl = argBase || process.env.KALSHI_BASE_URL;
const keyId = argKey || process.env.KALSHI_KEY_ID;
const keyPath = argPath || process.env.KALSHI_PRIVATE_KEY_PATH;
if (!baseUrl || !keyId || !keyPath) {
  console.error('usage: node kalshi_flow.mjs BASE_URL KEY_ID PRIVATE_KEY_PATH');
  process.exit(2);
}

function client(apiKey, privateKeyPem) {
  const config = new Configuration({ apiKey, privateKeyPem, basePath: baseUrl });
  return new ApiKeysApi(config, undefined, axios.create());
}

// Run one SDK call; record its HTTP status and body whether it succeeds or throws.
async function step(fn) {
  try {
    const res = await fn();
    return { ok: true, status: res.status, data: res.data ?? null };
  } catch (err) {
    if (err && err.response) {
      return { ok: false, status: err.response.status, data: err.response.data ?? null };
    }
    return { ok: false, status: null, error: String(err && err.message ? err.message : err) };
  }
}

const out = { sdk: 'kalshi-typescript', sdk_version: null };
try {
  out.sdk_version = JSON.parse(readFileSync(new URL('./node_modules/kalshi-typescript/package.json',
    import.meta.url), 'utf8')).version;
} catch { /* reported as null */ }

const boot = client(keyId, readFileSync(keyPath, 'utf8'));

out.generate = await step(() => boot.generateApiKey({ name: 'ts-generated', scopes: ['read', 'write'] }));
const generated = out.generate.data || {};

out.list = await step(() => boot.getApiKeys());

const pair = generateKeyPairSync('rsa', {
  modulusLength: 2048,
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
});
out.create = await step(() => boot.createApiKey({ name: 'ts-own-key', public_key: pair.publicKey }));
const createdId = out.create.data && out.create.data.api_key_id;

// The created key works before it is deleted ...
const own = client(createdId || 'missing', pair.privateKey);
out.created_key_list = await step(() => own.getApiKeys());

out.delete = await step(() => boot.deleteApiKey(createdId));
out.delete_again = await step(() => boot.deleteApiKey(createdId));
out.list_after_delete = await step(() => boot.getApiKeys());

// ... and the newly generated key signs requests of its own (read, write; no delete scope).
const gen = client(generated.api_key_id || 'missing', generated.private_key || pair.privateKey);
out.generated_key_list = await step(() => gen.getApiKeys());
out.generated_key_delete = await step(() => gen.deleteApiKey(keyId));

// A request signed by the deleted key.
out.deleted_key_list = await step(() => own.getApiKeys());

out.ids = { bootstrap: keyId, generated: generated.api_key_id || null, created: createdId || null };
process.stdout.write(JSON.stringify(out) + '\n');
