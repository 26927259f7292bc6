import type { RawResponse } from '../http/client.js';
import { ProviderError } from '../http/errors.js';

/**
 * What a 401 most likely means. Since 25 June 2025 Schoology answers 401 when
 * a personal API key reads other users' data ("Important API Authentication
 * Update", developers.schoology.com/api-documentation): a roster sync needs a
 * key with system-level access.
 */
export const SCHOOLOGY_AUTH_HINT =
  'either the consumer key/secret is wrong or was regenerated, or it is a personal API key: since June 2025 a personal key cannot read other users '
  + '(Schoology answers 401). Have a Schoology system administrator create a system-level API key (Integration → API, from an account whose role has '
  + '"Access Schoology API" over the whole school) and set it with `district add <id> --provider schoology --consumer-key K --consumer-secret S`';

const excerpt = (body: string) => {
  const text = body.trim().replace(/^"|"$/g, '').replace(/\s+/g, ' ').slice(0, 200);
  return text ? ` ("${text}")` : '';
};

/**
 * Schoology's own reading of a refusal, before the shared one: a 401 about the
 * timestamp/nonce is a clock or replay problem, not a bad key; any other 401
 * names the personal-key cause; a 403 is a permission the API user's role lacks.
 */
export function classifySchoologyResponse(raw: RawResponse): ProviderError | undefined {
  if (raw.status === 401) {
    if (/nonce|timestamp|replay/i.test(raw.body)) {
      return new ProviderError(
        `Schoology refused the request's OAuth timestamp/nonce (HTTP 401) on ${raw.where}${excerpt(raw.body)}: check this machine's clock (NTP); `
        + 'every request is signed with a fresh nonce, so a duplicate means something re-sent it', 'auth', 401);
    }
    return new ProviderError(`Schoology refused our credentials (HTTP 401) on ${raw.where}${excerpt(raw.body)}: ${SCHOOLOGY_AUTH_HINT}`, 'auth', 401);
  }
  if (raw.status === 403) {
    return new ProviderError(
      `Schoology forbade ${raw.where} (HTTP 403)${excerpt(raw.body)}: the API key's user lacks a permission the roster needs `
      + '(viewing users, courses and enrollments across all buildings): use a system-level API key', 'auth', 403);
  }
  return undefined;
}
