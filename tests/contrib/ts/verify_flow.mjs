// Drives verify() and createVerifier() of clients/typescript (its built dist) against a live server.
// argv: the client's dist/index.js; env: STRONGROOM_URL, VERIFY_KEY, CLIENT_KEY, HMAC_KEY_ID, HMAC_SIGNATURE,
// HMAC_TIMESTAMP, BODY, USER_TOKEN. Prints one JSON line of what it saw.
import { pathToFileURL } from 'node:url';

const { verify, createVerifier, TradrError } = await import(pathToFileURL(process.argv[2]).href);
const env = process.env;
const options = { verifyKey: env.VERIFY_KEY };
const out = {};

out.valid = await verify({ key: env.CLIENT_KEY, clientIp: '203.0.113.7', requiredScopes: ['read'] }, options);
out.scope = await verify({ key: env.CLIENT_KEY, clientIp: '203.0.113.7', requiredScopes: ['delete'] }, options);
out.unknown = await verify({ key: 'sr_' + 'H'.repeat(30), clientIp: '203.0.113.7' }, options);
out.signed = await verify({
  request: { method: 'POST', path: '/orders?x=1', body: env.BODY,
             headers: { 'SR-ACCESS-KEY': env.HMAC_KEY_ID, 'SR-ACCESS-TIMESTAMP': env.HMAC_TIMESTAMP,
                        'SR-ACCESS-SIGNATURE': env.HMAC_SIGNATURE } },
  clientIp: '203.0.113.7',
}, options);

// the cache: count the calls that reach the server
let calls = 0;
const counting = (...args) => { calls += 1; return fetch(...args); };
const cached = createVerifier({ ...options, cacheSeconds: 30, fetch: counting });
for (let i = 0; i < 3; i += 1) await cached({ key: env.CLIENT_KEY, clientIp: '203.0.113.7' });
for (let i = 0; i < 2; i += 1) await cached({ key: 'sr_' + 'H'.repeat(30), clientIp: '203.0.113.7' });
out.calls = calls;

// a caller without the verify scope, and a bad call
for (const [name, call] of [
  ['forbidden', () => verify({ key: env.CLIENT_KEY, clientIp: '203.0.113.7' }, { verifyKey: env.CLIENT_KEY })],
  ['invalid', () => verify({ key: env.CLIENT_KEY, clientIp: 'nope' }, options)],
  ['unreachable', () => verify({ key: env.CLIENT_KEY, clientIp: '1.2.3.4' }, { ...options, baseUrl: 'http://127.0.0.1:1' })],
]) {
  try {
    await call();
    out[name] = 'no error';
  } catch (error) {
    out[name] = { kind: error.constructor.name, status: error.status, isTradrError: error instanceof TradrError };
  }
}
console.log(JSON.stringify(out));
