// The models of TradrAPI's account and user API keys, as @tradrapi/trading-sdk documents them.

/** What a key may do: read (GET), write (create, rename) and delete. */
export enum UserRole {
  Read = 'read',
  Write = 'write',
  Delete = 'delete',
}

/** A role as a request may give it: `UserRole.Read` or its value `'read'`. */
export type Role = UserRole | `${UserRole}`;

/** A key bound to one exchange account. */
export interface AccountApiKey {
  /** The id of the key (a number) */
  id: number;
  /**
   * The date the key was created
   * @format date-time
   */
  createdAt: string;
  /**
   * The date the key was last updated
   * @format date-time
   */
  updatedAt: string;
  /** The roles assigned to the key. Roles determine what actions the key can perform */
  roles: UserRole[];
  /** The id of the (exchange) account the API key belongs to */
  accountId: number;
  /** A friendly name for the API key */
  friendlyName?: string;
  /** The API key: the plaintext key in the response that creates it only, afterwards its hash */
  apiKey: string;
  /** The IPs (or CIDR networks) the API key can be used from. Empty array means any IP is allowed */
  ips?: string[];
  /**
   * The last time the key was used
   * @format date-time
   */
  lastUsedAt?: string;
}

/** A key of a user, for all or some of the user's accounts. */
export interface UserApiKey {
  /** The id of the key (a number) */
  id: number;
  /**
   * The date the key was created
   * @format date-time
   */
  createdAt: string;
  /**
   * The date the key was last updated
   * @format date-time
   */
  updatedAt: string;
  /** The roles assigned to the key. Roles determine what actions the key can perform */
  roles: UserRole[];
  /** The id of the user the API key belongs to */
  userId: number;
  /** A friendly name for the API key */
  friendlyName?: string;
  /** The API key: the plaintext key in the response that creates it only, afterwards its hash */
  apiKey: string;
  /** The IPs (or CIDR networks) the API key can be used from. Empty array means any IP is allowed */
  ips?: string[];
  /** The ids of the accounts this key can act on. Empty array means every account of the user */
  accountIds?: number[];
  /**
   * The last time the key was used
   * @format date-time
   */
  lastUsedAt?: string;
}

export interface CreateAccountApiKeyRequest {
  /** The exchange account the key is bound to */
  accountId: number;
  friendlyName?: string;
  roles: Role[];
  /** Only allow requests from these IPs or CIDR networks; empty: any IP. Missing: the calling key's own list */
  ips?: string[];
}

export interface CreateUserApiKeyRequest {
  /** Your own user id (a key or token acts only for its own user) */
  userId: number;
  roles: Role[];
  friendlyName?: string;
  /** Only allow requests from these IPs or CIDR networks; empty: any IP. Missing: the calling key's own list */
  ips?: string[];
  /** The accounts the key can act on; empty or missing: every account the calling key reaches */
  accountIds?: number[];
}

export interface UpdateAccountApiKeyRequest {
  accountApiKeyId: number;
  friendlyName: string;
}

export interface UpdateUserApiKeyRequest {
  userApiKeyId: number;
  friendlyName: string;
}

export type SortDir = 'ASC' | 'DESC';

/** Page-based listing: `page` from 1 (default 1), `limit` 1..100 (default 10), newest first by default. */
export interface PaginationQuery {
  page?: number;
  limit?: number;
  sortDir?: SortDir;
  /** id (default), createdAt, updatedAt, lastUsedAt or friendlyName */
  sortBy?: 'id' | 'createdAt' | 'updatedAt' | 'lastUsedAt' | 'friendlyName';
}

export interface PaginatedControllerResponse<T> {
  data: T[];
  limit: number;
  page: number;
  total: number;
  message?: string;
}
