import { ProviderError } from '../http/errors.js';
import type { RawResponse } from '../http/client.js';

// How Canvas says no (instructure/canvas-lms):
// - app/middleware/request_throttle.rb#rate_limit_exceeded: plain text
//   "403 Forbidden (Rate Limit Exceeded)" (or, with request_throttle.send_429_response,
//   "429 Too Many Requests (Rate Limit Exceeded)") with X-Rate-Limit-Remaining. No Retry-After.
// - lib/authentication_methods.rb / application_controller.rb: 401 with
//   WWW-Authenticate and {"errors":[{"message":"Invalid access token."}]} (also
//   "Expired access token." / "Revoked access token."), and
//   {"status":"unauthorized","errors":[{"message":"user not authorized to perform that action"}]}
//   for a valid token lacking a permission: 401 on older Canvas, 403 on current.

export const TOKEN_HINT = 'the access token is invalid, expired or revoked: create a new one (Account > Settings > Approved integrations, or a developer key) and run `district add … --token`';
export const PERMISSION_HINT = "the token's user lacks a permission on this account: the token must belong to an account admin with at least 'Users - view list', 'Courses - view list', 'Users - view login ids' and 'SIS data - read' (and 'Reports - manage' for the fast path)";

export type CanvasRefusal = 'throttled' | 'token' | 'permission' | 'scope';

/** A ProviderError that knows which kind of Canvas refusal it was. */
export class CanvasRefusalError extends ProviderError {
  constructor(message: string, kind: ProviderError['kind'], status: number, readonly refusal: CanvasRefusal, retryAfterMs?: number) {
    super(message, kind, status, retryAfterMs);
  }
}

/** Reads a Canvas refusal from its status and body; undefined for anything else. */
export function canvasRefusal({ status, body, headers }: Pick<RawResponse, 'status' | 'body' | 'headers'>): CanvasRefusal | undefined {
  if ((status === 403 || status === 429) && /rate limit exceeded/i.test(body)) return 'throttled';
  if (status === 429) return 'throttled';
  if (status !== 401 && status !== 403) return undefined;
  const message = errorMessage(body);
  if (/user not authorized to perform that action/i.test(message) || /"status"\s*:\s*"unauthorized"/.test(body)) return 'permission';
  if (/insufficient scopes/i.test(message)) return 'scope';
  if (status === 401 || headers['www-authenticate']) return 'token';
  return 'permission';
}

/** The first `errors[].message` of a Canvas JSON error body, or ''. */
export function errorMessage(body: string): string {
  try {
    const parsed = JSON.parse(body) as { errors?: { message?: unknown }[] | Record<string, unknown>; message?: unknown };
    const first = Array.isArray(parsed.errors) ? parsed.errors[0]?.message : parsed.message;
    return typeof first === 'string' ? first.slice(0, 200) : '';
  } catch {
    return '';
  }
}

/**
 * Canvas's reading of a non-2xx answer for ProviderHttpClient#classifyResponse.
 * Throttling is retryable (waited out for `throttleWaitMs`, since Canvas sends no
 * Retry-After); a refused token or a missing permission fails the run at once
 * with a message that says which it was.
 */
export function classifyCanvas(raw: RawResponse, throttleWaitMs: number): CanvasRefusalError | undefined {
  const refusal = canvasRefusal(raw);
  const said = errorMessage(raw.body);
  const detail = said ? ` ("${said}")` : '';
  switch (refusal) {
    case 'throttled':
      return new CanvasRefusalError(`Canvas throttled ${raw.where} (HTTP ${raw.status}, Rate Limit Exceeded; X-Rate-Limit-Remaining ${raw.headers['x-rate-limit-remaining'] ?? '?'})`, 'rate-limit', raw.status, refusal, throttleWaitMs);
    case 'token':
      return new CanvasRefusalError(`Canvas refused the access token (HTTP ${raw.status}) on ${raw.where}${detail}: ${TOKEN_HINT}`, 'auth', raw.status, refusal);
    case 'scope':
      return new CanvasRefusalError(`Canvas refused the access token's scopes (HTTP ${raw.status}) on ${raw.where}${detail}: the developer key is scoped and lacks this endpoint; allow it or use an unscoped token`, 'auth', raw.status, refusal);
    case 'permission':
      return new CanvasRefusalError(`Canvas: the token is valid but not permitted to ${raw.where} (HTTP ${raw.status})${detail}: ${PERMISSION_HINT}`, 'auth', raw.status, refusal);
    default:
      return undefined;
  }
}
