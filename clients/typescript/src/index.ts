// Strongroom's TradrAPI-compatible client: the API of @tradrapi/trading-sdk's account and user key methods.

export { AccountApiKeys, DEFAULT_BASE_URL, Tradr, UserApiKeys } from './tradr.js';
export type { TradrAuth, TradrOptions } from './tradr.js';
export {
  TradrBadRequestError,
  TradrConflictError,
  TradrConnectionError,
  TradrError,
  TradrForbiddenError,
  TradrNotFoundError,
  TradrRateLimitError,
  TradrServerError,
  TradrUnauthorizedError,
  TradrValidationError,
} from './errors.js';
export { UserRole } from './types.js';
export type {
  AccountApiKey,
  CreateAccountApiKeyRequest,
  CreateUserApiKeyRequest,
  PaginatedControllerResponse,
  PaginationQuery,
  Role,
  SortDir,
  UpdateAccountApiKeyRequest,
  UpdateUserApiKeyRequest,
  UserApiKey,
} from './types.js';
export { createVerifier, verify } from './verify.js';
export type { SignedRequest, Verdict, VerifyInput, VerifyOptions, VerifyReason } from './verify.js';
