// The client: Tradr.make({ auth, baseUrl? }) with `accounts` and `users` key methods, over fetch only.

import { TradrConnectionError, TradrError, errorFor } from './errors.js';
import type {
  AccountApiKey,
  CreateAccountApiKeyRequest,
  CreateUserApiKeyRequest,
  PaginatedControllerResponse,
  PaginationQuery,
  UpdateAccountApiKeyRequest,
  UpdateUserApiKeyRequest,
  UserApiKey,
} from './types.js';

/** How the client authenticates: an API key (sent as `x-api-key`) or an access token (`Authorization: Bearer`). */
export type TradrAuth = { apiKey: string } | { accessToken: string };

export interface TradrOptions {
  auth: TradrAuth;
  /** The server's root URL (the client adds /tradr). Default: TRADR_API_URL, then http://127.0.0.1:8000 */
  baseUrl?: string;
  /** A fetch to use instead of the global one (tests, proxies) */
  fetch?: typeof fetch;
}

export const DEFAULT_BASE_URL = 'http://127.0.0.1:8000';
/** The page size used to fetch every page when a list is asked for without a page */
const ALL_PAGES_LIMIT = 100;

function environmentBaseUrl(): string | undefined {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  const value = env?.TRADR_API_URL?.trim();
  return value ? value : undefined;
}

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

/** Sends requests to the /tradr surface; turns every non-2xx answer into a TradrError. */
class Transport {
  readonly baseUrl: string;
  private readonly headers: Record<string, string>;
  private readonly fetcher: typeof fetch;

  constructor(options: TradrOptions) {
    const auth = options?.auth as Partial<{ apiKey: unknown; accessToken: unknown }> | undefined;
    const apiKey = auth?.apiKey;
    const accessToken = auth?.accessToken;
    if ((apiKey === undefined) === (accessToken === undefined)) {
      throw new TypeError('Tradr.make: auth must be { apiKey } or { accessToken }');
    }
    const credential = apiKey ?? accessToken;
    if (typeof credential !== 'string' || credential === '') {
      throw new TypeError('Tradr.make: the apiKey or accessToken must be a non-empty string');
    }
    this.headers = apiKey !== undefined
      ? { 'x-api-key': credential }
      : { authorization: `Bearer ${credential}` };
    this.headers.accept = 'application/json';
    this.baseUrl = (options.baseUrl ?? environmentBaseUrl() ?? DEFAULT_BASE_URL).replace(/\/+$/, '');
    const fetcher = options.fetch ?? globalThis.fetch;
    if (typeof fetcher !== 'function') {
      throw new TypeError('Tradr.make: no fetch available (Node.js >= 18, or pass options.fetch)');
    }
    this.fetcher = fetcher;
  }

  async request<T>(method: Method, path: string, body?: unknown, query?: Record<string, unknown>): Promise<T> {
    const url = new URL(`${this.baseUrl}/tradr${path}`);
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== null) url.searchParams.set(name, String(value));
    }
    const headers: Record<string, string> = { ...this.headers };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await this.fetcher(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (cause) {
      const reason = cause instanceof Error ? cause.message : String(cause);
      throw new TradrConnectionError(0, `cannot reach ${this.baseUrl}: ${reason}`, 'Connection Error');
    }
    const text = await response.text();
    let decoded: unknown = text;
    if (text) {
      try {
        decoded = JSON.parse(text);
      } catch {
        decoded = text;
      }
    }
    if (!response.ok) {
      throw errorFor(response.status, response.statusText, decoded, response.headers.get('retry-after'));
    }
    if (typeof decoded === 'string') {
      throw new TradrError(response.status, 'the answer is not JSON', 'Invalid Response', undefined, decoded);
    }
    return decoded as T;
  }
}

function id(value: number, name: string): string {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw new TypeError(`${name} must be an integer`);
  }
  return String(value);
}

/** Every page of a list, `limit` at a time (default 100), in the order asked for. */
async function allPages<T>(fetchPage: (query: PaginationQuery) => Promise<PaginatedControllerResponse<T>>,
                           query: PaginationQuery): Promise<T[]> {
  const out: T[] = [];
  const limit = query.limit ?? ALL_PAGES_LIMIT;
  for (let page = 1; ; page += 1) {
    const answer = await fetchPage({ ...query, page, limit });
    out.push(...answer.data);
    if (answer.data.length === 0 || out.length >= answer.total || answer.data.length < limit) return out;
  }
}

/** Account API keys: keys bound to one exchange account. */
export class AccountApiKeys {
  constructor(private readonly transport: Transport) {}

  /** Create a key for `accountId`; its `apiKey` is the plaintext key, shown this once. */
  createApiKey(request: CreateAccountApiKeyRequest): Promise<AccountApiKey> {
    return this.transport.request<AccountApiKey>('POST', '/accounts/api-keys', request);
  }

  /** One account key by its id (`apiKey` is its hash). */
  getApiKey(accountApiKeyId: number): Promise<AccountApiKey> {
    return this.transport.request<AccountApiKey>('GET', `/accounts/api-keys/${id(accountApiKeyId, 'accountApiKeyId')}`);
  }

  /** The account's keys: every page, or only `query.page` when it is given. */
  async listApiKeys(accountId: number, query: PaginationQuery = {}): Promise<AccountApiKey[]> {
    if (query.page !== undefined) return (await this.listApiKeysPage(accountId, query)).data;
    return allPages((q) => this.listApiKeysPage(accountId, q), query);
  }

  /** One page of the account's keys, with `total`. */
  listApiKeysPage(accountId: number, query: PaginationQuery = {}): Promise<PaginatedControllerResponse<AccountApiKey>> {
    return this.transport.request('GET', `/accounts/${id(accountId, 'accountId')}/api-keys`, undefined, { ...query });
  }

  /** Rename an account key; `true`. */
  updateApiKey(request: UpdateAccountApiKeyRequest): Promise<boolean> {
    const path = `/accounts/api-keys/${id(request.accountApiKeyId, 'accountApiKeyId')}`;
    return this.transport.request<boolean>('PATCH', path, { friendlyName: request.friendlyName });
  }

  /** Delete an account key; `true` (an unknown key is a TradrNotFoundError). */
  deleteApiKey(accountApiKeyId: number): Promise<boolean> {
    return this.transport.request<boolean>('DELETE', `/accounts/api-keys/${id(accountApiKeyId, 'accountApiKeyId')}`);
  }
}

/** User API keys: keys of the user, for all or some of its accounts. */
export class UserApiKeys {
  constructor(private readonly transport: Transport) {}

  /** Create a key of user `userId` (yourself); its `apiKey` is the plaintext key, shown this once. */
  createApiKey(request: CreateUserApiKeyRequest): Promise<UserApiKey> {
    return this.transport.request<UserApiKey>('POST', '/users/api-keys', request);
  }

  /** One key of your user by its id (`apiKey` is its hash). */
  getApiKey(userApiKeyId: number): Promise<UserApiKey> {
    return this.transport.request<UserApiKey>('GET', `/users/api-keys/${id(userApiKeyId, 'userApiKeyId')}`);
  }

  /** The user's keys: every page, or only `query.page` when it is given. */
  async listApiKeys(userId: number, query: PaginationQuery = {}): Promise<UserApiKey[]> {
    if (query.page !== undefined) return (await this.listApiKeysPage(userId, query)).data;
    return allPages((q) => this.listApiKeysPage(userId, q), query);
  }

  /** One page of the user's keys, with `total`. */
  listApiKeysPage(userId: number, query: PaginationQuery = {}): Promise<PaginatedControllerResponse<UserApiKey>> {
    return this.transport.request('GET', `/users/${id(userId, 'userId')}/api-keys`, undefined, { ...query });
  }

  /** Rename a key of your user; `true`. */
  updateApiKey(request: UpdateUserApiKeyRequest): Promise<boolean> {
    const path = `/users/api-keys/${id(request.userApiKeyId, 'userApiKeyId')}`;
    return this.transport.request<boolean>('PATCH', path, { friendlyName: request.friendlyName });
  }

  /** Delete a key of your user; `true` (an unknown key is a TradrNotFoundError). */
  deleteApiKey(userApiKeyId: number): Promise<boolean> {
    return this.transport.request<boolean>('DELETE', `/users/api-keys/${id(userApiKeyId, 'userApiKeyId')}`);
  }
}

/** The client. `Tradr.make({ auth: { apiKey } })` or `Tradr.make({ auth: { accessToken } })`. */
export class Tradr {
  readonly accounts: AccountApiKeys;
  readonly users: UserApiKeys;
  /** The server's root URL in use */
  readonly baseUrl: string;

  private constructor(transport: Transport) {
    this.accounts = new AccountApiKeys(transport);
    this.users = new UserApiKeys(transport);
    this.baseUrl = transport.baseUrl;
  }

  /** Return a client; throws TypeError for options it cannot use. */
  static make(options: TradrOptions): Tradr {
    return new Tradr(new Transport(options));
  }
}
