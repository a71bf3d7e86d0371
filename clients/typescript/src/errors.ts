// Typed errors: every non-2xx answer is thrown as a TradrError subclass carrying its status and message.

/** An error answer of the API (`{statusCode, message, error}`), or a request that never got one (status 0). */
export class TradrError extends Error {
  /** The HTTP status (0: no answer, e.g. the server could not be reached) */
  readonly status: number;
  /** The reason phrase the API gave (`error`), e.g. "Not Found" */
  readonly error: string;
  /** Seconds to wait before retrying, from Retry-After (429, 503) */
  readonly retryAfter: number | undefined;
  /** The decoded body of the answer, if it had one */
  readonly body: unknown;

  constructor(status: number, message: string, error: string, retryAfter?: number, body?: unknown) {
    super(message);
    this.name = new.target.name;
    this.status = status;
    this.error = error;
    this.retryAfter = retryAfter;
    this.body = body;
  }
}

/** 400: the request cannot be read (malformed JSON, ...). */
export class TradrBadRequestError extends TradrError {}
/** 401: no credentials, or unknown, expired or deleted ones. */
export class TradrUnauthorizedError extends TradrError {}
/** 403: the credentials may not do this (role, account, IP allowlist, another user, a more powerful key). */
export class TradrForbiddenError extends TradrError {}
/** 404: no such key or account (or not yours). */
export class TradrNotFoundError extends TradrError {}
/** 409: the key changed under the request; try again. */
export class TradrConflictError extends TradrError {}
/** 422: a field is missing or not valid (`message` names it). */
export class TradrValidationError extends TradrError {}
/** 429: too many requests; see `retryAfter`. */
export class TradrRateLimitError extends TradrError {}
/** 5xx: the server or a service behind it failed; retry after `retryAfter` if given. */
export class TradrServerError extends TradrError {}
/** No answer at all (status 0): the server could not be reached. */
export class TradrConnectionError extends TradrError {}

const BY_STATUS: Record<number, typeof TradrError> = {
  400: TradrBadRequestError,
  401: TradrUnauthorizedError,
  403: TradrForbiddenError,
  404: TradrNotFoundError,
  409: TradrConflictError,
  422: TradrValidationError,
  429: TradrRateLimitError,
};

/** Return the error for an answer with `status`, its decoded `body` and its Retry-After header. */
export function errorFor(status: number, statusText: string, body: unknown, retryAfter: string | null): TradrError {
  const doc = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
  const message = typeof doc.message === 'string' ? doc.message
    : Array.isArray(doc.message) ? doc.message.join('; ')
    : typeof body === 'string' && body ? body.slice(0, 200)
    : statusText || `HTTP ${status}`;
  const error = typeof doc.error === 'string' ? doc.error : statusText;
  const seconds = retryAfter !== null && /^\d+$/.test(retryAfter.trim()) ? Number(retryAfter) : undefined;
  const Kind = BY_STATUS[status] ?? (status >= 500 ? TradrServerError : TradrError);
  return new Kind(status, message, error, seconds, body);
}
