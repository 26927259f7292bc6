import { createHash } from 'node:crypto';
import type { Db } from '../../db/connection.js';
import { SignInRefusal } from './refusals.js';
import type { SsoProvider } from './providers.js';

// State of a sign-in started here: stored hashed, bound to the browser through
// a random cookie (its hash is stored with the state), consumed by the first
// callback that names it, and only valid for ten minutes.
export const STATE_TTL_SEC = 600;

const hash = (s: string) => createHash('sha256').update(s).digest('base64url');

export interface PendingSignIn {
  provider: SsoProvider;
  districtId: string;
  nonce: string;
  codeVerifier: string;
}

export async function saveState(db: Db, state: string, browserKey: string, p: PendingSignIn): Promise<void> {
  // Expired rows are swept on the way, so the table stays small without a job.
  await db.deleteFrom('sso_states').where('expires_at', '<', new Date()).execute();
  await db.insertInto('sso_states').values({
    state_hash: hash(state), browser_hash: hash(browserKey), provider: p.provider, district_id: p.districtId,
    nonce: p.nonce, code_verifier: p.codeVerifier, expires_at: new Date(Date.now() + STATE_TTL_SEC * 1000),
  }).execute();
}

/** Takes the state out (single use, even when it then fails a check) and returns what the sign-in started with. */
export async function consumeState(db: Db, provider: SsoProvider, state: string, browserKey: string | undefined): Promise<PendingSignIn> {
  const row = await db.deleteFrom('sso_states').where('state_hash', '=', hash(state)).returningAll().executeTakeFirst();
  const again = 'Start the sign-in again from the sign-in page or your portal.';
  if (!row) throw new SignInRefusal('invalid_state', `This sign-in link is unknown or was already used. ${again}`, { reason: 'unknown or used' });
  if (row.expires_at.getTime() < Date.now()) throw new SignInRefusal('invalid_state', `This sign-in took longer than ${STATE_TTL_SEC / 60} minutes and expired. ${again}`, { reason: 'expired', districtId: row.district_id });
  if (!browserKey || hash(browserKey) !== row.browser_hash) throw new SignInRefusal('invalid_state', `This sign-in was started in another browser (or cookies are blocked). ${again}`, { reason: 'other browser', districtId: row.district_id });
  if (row.provider !== provider) throw new SignInRefusal('invalid_state', `This sign-in was started for another provider. ${again}`, { reason: 'other provider', districtId: row.district_id });
  return { provider, districtId: row.district_id, nonce: row.nonce, codeVerifier: row.code_verifier };
}
