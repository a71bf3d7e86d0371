// Drive every method of Strongroom's TradrAPI client against a live server (test_tradr_sdk.py compiles
// it with tsc, runs it with node and checks what it prints; it asserts nothing itself).
//
// Environment: TRADR_API_URL (the server), TRADR_TEST_ACCESS_TOKEN (a /v1 access token),
// TRADR_TEST_USER_ID, TRADR_TEST_ACCOUNT_ID and TRADR_TEST_OTHER_ACCOUNT_ID (two accounts of that user).

import {
  type AccountApiKey,
  Tradr,
  TradrError,
  type UserApiKey,
  UserRole,
} from '@tradrapi/trading-sdk';

declare const process: { env: Record<string, string | undefined> };

const env = process.env;
const token = env.TRADR_TEST_ACCESS_TOKEN ?? '';
const userId = Number(env.TRADR_TEST_USER_ID);
const accountId = Number(env.TRADR_TEST_ACCOUNT_ID);
const otherAccountId = Number(env.TRADR_TEST_OTHER_ACCOUNT_ID);

function describe(error: unknown): Record<string, unknown> {
  if (error instanceof TradrError) {
    return { type: error.constructor.name, isTradrError: true, status: error.status, error: error.error,
             message: error.message, retryAfter: error.retryAfter ?? null };
  }
  const e = error as Error;
  return { type: e?.constructor?.name ?? typeof error, isTradrError: false, message: String(e?.message ?? error) };
}

async function attempt<T>(fn: () => Promise<T>): Promise<{ ok?: T; error?: Record<string, unknown> }> {
  try {
    return { ok: await fn() };
  } catch (error) {
    return { error: describe(error) };
  }
}

const out: Record<string, unknown> = {};

// An access token; the base URL from TRADR_API_URL.
const api = Tradr.make({ auth: { accessToken: token } });
out.baseUrl = api.baseUrl;

const userKey: UserApiKey = await api.users.createApiKey({
  userId,
  roles: [UserRole.Read, 'write', UserRole.Delete],
  friendlyName: 'My Personal Key',
  ips: [],
  accountIds: [],
});
out.userKey = userKey;
out.userKeyGet = await api.users.getApiKey(userKey.id);

// The new user key (x-api-key), with an explicit base URL (its trailing slash is dropped).
const byKey = Tradr.make({ auth: { apiKey: userKey.apiKey }, baseUrl: `${env.TRADR_API_URL}/` });
const made: AccountApiKey[] = [];
for (let n = 0; n < 12; n += 1) {
  made.push(await byKey.accounts.createApiKey({ accountId, roles: ['read'], friendlyName: `flow-${String(n).padStart(2, '0')}` }));
}
out.made = made.map((k) => k.id);
out.madePlaintext = made.every((k) => k.apiKey.startsWith('sr_'));
out.listAll = (await byKey.accounts.listApiKeys(accountId)).map((k) => k.id);
out.listAllBy5 = (await byKey.accounts.listApiKeys(accountId, { limit: 5, sortDir: 'ASC' })).map((k) => k.id);
out.listPage2 = (await byKey.accounts.listApiKeys(accountId, { page: 2, limit: 5, sortDir: 'ASC' })).map((k) => k.id);
out.listPage = await byKey.accounts.listApiKeysPage(accountId, { page: 3, limit: 5, sortBy: 'friendlyName', sortDir: 'DESC' });
out.userList = (await api.users.listApiKeys(userId)).map((k) => k.id);
out.userListPage = await api.users.listApiKeysPage(userId, { limit: 1 });

out.renameAccountKey = await byKey.accounts.updateApiKey({ accountApiKeyId: made[2].id, friendlyName: 'renamed account key' });
out.renamedAccountKey = (await byKey.accounts.getApiKey(made[2].id)).friendlyName;
out.renameUserKey = await api.users.updateApiKey({ userApiKeyId: userKey.id, friendlyName: 'Renamed personal key' });
out.renamedUserKey = (await api.users.getApiKey(userKey.id)).friendlyName;
out.deleteAccountKey = await byKey.accounts.deleteApiKey(made[0].id);
out.getDeleted = await attempt(() => byKey.accounts.getApiKey(made[0].id));
out.deleteAgain = await attempt(() => byKey.accounts.deleteApiKey(made[0].id));
out.invalid = await attempt(() => byKey.accounts.createApiKey({ accountId, roles: [] }));
out.otherUser = await attempt(() => api.users.listApiKeys(userId + 1000000));

// A read-only account key: its own account only, and it creates nothing.
const narrow = Tradr.make({ auth: { apiKey: made[1].apiKey } });
out.narrowOwn = (await narrow.accounts.listApiKeys(accountId)).length;
out.narrowOther = await attempt(() => narrow.accounts.listApiKeys(otherAccountId));
out.narrowCreate = await attempt(() => narrow.accounts.createApiKey({ accountId, roles: ['read'] }));
out.narrowUserKey = await attempt(() => narrow.users.getApiKey(userKey.id));

out.deleteUserKey = await api.users.deleteApiKey(userKey.id);
out.deletedKeyRefused = await attempt(() => byKey.accounts.listApiKeys(accountId));

out.unreachable = await attempt(() => Tradr.make({ auth: { accessToken: token }, baseUrl: 'http://127.0.0.1:9' })
  .users.getApiKey(1));
out.badOptions = await attempt(async () => Tradr.make({ auth: {} as { apiKey: string } }));
out.badId = await attempt(() => api.users.getApiKey(1.5));

console.log(JSON.stringify(out));
