// verify(): ask Strongroom whether a request your service received is signed by a valid key
// (POST /v1/keys/verify), with a short cache of positive verdicts for bearer keys.

import { TradrConnectionError, errorFor } from './errors.js';

/** Why a request is refused. */
export type VerifyReason =
  | 'unknown_key' | 'expired' | 'revoked' | 'bad_signature' | 'replayed'
  | 'ip_not_allowed' | 'insufficient_scope' | 'rate_limited';

/** The request as your client sent it (for signed schemes, X-API-Key or Basic). */
export interface SignedRequest {
  method: string;
  /** The path with its query string, as sent */
  path: string;
  /** The headers that carry the credentials (Authorization, X-API-Key, KALSHI-ACCESS-*, SR-ACCESS-*, APIKEY, Signature) */
  headers?: Record<string, string>;
  /** The raw body as text, for schemes that sign it (SR-ACCESS, 3Commas) */
  body?: string;
  /** The raw body in base64, instead of `body` */
  bodyBase64?: string;
}

/** What to verify: a bearer `key` or a `request`, and the end client's address. */
export interface VerifyInput {
  key?: string;
  request?: SignedRequest;
  /** The end client's IP address (the key's allowlist and failure budget use it) */
  clientIp: string;
  /** Scopes the key must hold */
  requiredScopes?: string[];
}

/** Strongroom's verdict. Never carries a secret. */
export interface Verdict {
  valid: boolean;
  reason: VerifyReason | null;
  userId: number | null;
  keyId: string | null;
  scopes: string[] | null;
  /** null: every account of the key's user */
  accountIds: number[] | null;
  expiresAt: string | null;
  ratelimit: { limit: number; remaining: number; reset: number } | null;
  retryAfter: number | null;
}

export interface VerifyOptions {
  /** A key with the `verify` scope (or an admin's access token) */
  verifyKey: string;
  /** Strongroom's root URL. Default: STRONGROOM_URL, then http://127.0.0.1:8000 */
  baseUrl?: string;
  /** How long a positive verdict for a bearer key is reused (seconds; default 5, 0: never) */
  cacheSeconds?: number;
  /** Entries kept at most in that cache (default 10000) */
  cacheSize?: number;
  fetch?: typeof fetch;
}

function environmentUrl(): string | undefined {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  const value = env?.STRONGROOM_URL?.trim();
  return value ? value : undefined;
}

type Wire = {
  valid: boolean; reason: VerifyReason | null; user_id: number | null; key_id: string | null;
  scopes: string[] | null; account_ids: number[] | null; expires_at: string | null;
  ratelimit: { limit: number; remaining: number; reset: number } | null; retry_after: number | null;
};

/** Ask once, without a cache. Throws a TradrError for a bad call (4xx) or a failure (5xx, no answer). */
export async function verify(input: VerifyInput, options: VerifyOptions): Promise<Verdict> {
  const base = (options.baseUrl ?? environmentUrl() ?? 'http://127.0.0.1:8000').replace(/\/+$/, '');
  const fetcher = options.fetch ?? globalThis.fetch;
  const body: Record<string, unknown> = { client_ip: input.clientIp, required_scopes: input.requiredScopes ?? [] };
  if (input.key !== undefined) body.key = input.key;
  if (input.request !== undefined) {
    const { bodyBase64, ...rest } = input.request;
    body.request = bodyBase64 === undefined ? rest : { ...rest, body_base64: bodyBase64 };
  }
  let response: Response;
  try {
    response = await fetcher(`${base}/v1/keys/verify`, {
      method: 'POST',
      headers: { authorization: `Bearer ${options.verifyKey}`, 'content-type': 'application/json',
                 accept: 'application/json' },
      body: JSON.stringify(body),
    });
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new TradrConnectionError(0, `cannot reach ${base}: ${reason}`, 'Connection Error');
  }
  const text = await response.text();
  let decoded: unknown = text;
  try {
    decoded = text ? JSON.parse(text) : text;
  } catch {
    decoded = text;
  }
  if (response.status !== 200 || typeof decoded !== 'object' || decoded === null) {
    const doc = typeof decoded === 'object' && decoded !== null ? decoded as Record<string, unknown> : {};
    const message = typeof doc.detail === 'string' ? { message: doc.detail, error: doc.code } : decoded;
    throw errorFor(response.status, response.statusText, message, response.headers.get('retry-after'));
  }
  const w = decoded as Wire;
  return {
    valid: w.valid, reason: w.reason, userId: w.user_id, keyId: w.key_id, scopes: w.scopes,
    accountIds: w.account_ids, expiresAt: w.expires_at, ratelimit: w.ratelimit, retryAfter: w.retry_after,
  };
}

/**
 * Return a verify function with its own cache: a valid verdict for a bearer `key` (same key, address
 * and scopes) is reused for `cacheSeconds`, so revoking a key reaches your service within that time and
 * reused verdicts are not counted in the key's usage. Signed requests and refusals are never cached.
 */
export function createVerifier(options: VerifyOptions): (input: VerifyInput) => Promise<Verdict> {
  const ttl = (options.cacheSeconds ?? 5) * 1000;
  const size = options.cacheSize ?? 10_000;
  const cache = new Map<string, { until: number; verdict: Verdict }>();
  return async (input: VerifyInput): Promise<Verdict> => {
    const cacheable = ttl > 0 && input.key !== undefined && input.request === undefined;
    const id = cacheable ? JSON.stringify([input.key, input.clientIp, [...(input.requiredScopes ?? [])].sort()]) : '';
    if (cacheable) {
      const hit = cache.get(id);
      if (hit !== undefined && hit.until > Date.now()) return hit.verdict;
      cache.delete(id);
    }
    const verdict = await verify(input, options);
    if (cacheable && verdict.valid) {
      if (cache.size >= size) cache.delete(cache.keys().next().value as string);  // the oldest entry
      cache.set(id, { until: Date.now() + ttl, verdict });
    }
    return verdict;
  };
}
