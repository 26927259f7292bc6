import type { Db } from '../../db/connection.js';
import { SecretsKeyError, isSealed, type SecretBox } from '../secrets/secret-box.js';
import { mapSecrets } from './credentials.js';

export interface RotationReport {
  /** The key every secret is now sealed with. */
  keyId: string;
  districts: number;
  /** Sign-in apps (sso_apps), whose client secret is sealed the same way. */
  ssoApps: number;
  /** Secrets sealed with SECRETS_KEY_PREVIOUS (or another old key still given), now sealed with SECRETS_KEY. */
  resealed: number;
  /** Secrets stored in plaintext before encryption at rest, now sealed. */
  sealedPlaintext: number;
  /** Secrets already sealed with SECRETS_KEY (each opened, to prove it still verifies). */
  current: number;
}

/**
 * Re-seals every stored secret (district provider credentials, sign-in client
 * secrets) with the current key: the second half of a key rotation (set the
 * new SECRETS_KEY, move the old one to SECRETS_KEY_PREVIOUS, run this, then
 * drop SECRETS_KEY_PREVIOUS). All or nothing: one secret that cannot be opened
 * (unknown key, failed integrity check) aborts the rotation and changes no row.
 */
export async function rotateSecrets(db: Db, box: SecretBox): Promise<RotationReport> {
  const keyId = box.keyId;
  if (!keyId) throw new SecretsKeyError('SECRETS_KEY is not set: set the new key (and the old one as SECRETS_KEY_PREVIOUS) before rotate-secrets');
  const report: RotationReport = { keyId, districts: 0, ssoApps: 0, resealed: 0, sealedPlaintext: 0, current: 0 };

  /** The value as it must be stored now; `changed` says whether that differs. */
  const reseal = (value: string, where: string): { value: string; changed: boolean } => {
    if (!isSealed(value)) {
      report.sealedPlaintext++;
      return { value: box.seal(value), changed: true };
    }
    let plain: string;
    try {
      plain = box.open(value);
    } catch (err) {
      throw new SecretsKeyError(`${where}: ${(err as Error).message}; nothing was re-sealed`);
    }
    if (!box.needsReseal(value)) {
      report.current++;
      return { value, changed: false };
    }
    report.resealed++;
    return { value: box.seal(plain), changed: true };
  };

  await db.transaction().execute(async (trx) => {
    // Locked, so a `district add` or `sso set` racing the rotation waits instead of being overwritten.
    const districts = await trx.selectFrom('districts').select(['id', 'settings']).orderBy('id').forUpdate().execute();
    for (const row of districts) {
      let changed = false;
      const settings = mapSecrets(row.settings, (value, field) => {
        const next = reseal(value, `district '${row.id}' ${field}`);
        changed ||= next.changed;
        return next.value;
      });
      report.districts++;
      if (changed) await trx.updateTable('districts').set({ settings: JSON.stringify(settings), updated_at: new Date() }).where('id', '=', row.id).execute();
    }
    const apps = await trx.selectFrom('sso_apps').select(['id', 'provider', 'client_id', 'client_secret_sealed']).orderBy('id').forUpdate().execute();
    for (const app of apps) {
      const next = reseal(app.client_secret_sealed, `sign-in app ${app.provider} ${app.client_id} client secret`);
      report.ssoApps++;
      if (next.changed) await trx.updateTable('sso_apps').set({ client_secret_sealed: next.value, updated_at: new Date() }).where('id', '=', app.id).execute();
    }
  });
  return report;
}
