import type { Db } from '../../db/connection.js';
import { SecretBox, SecretsKeyError, isSealed } from '../secrets/secret-box.js';

// Which credential fields are secrets, and how they cross the database
// boundary: sealed on the way in, opened on the way out, so the rest of the
// code only ever sees plain DistrictSettings and `districts.settings` never
// holds a secret in plaintext. Ids (client id, consumer key) and URLs are not
// secrets: keeping them readable lets ops see which app a district uses.

export const SECRET_FIELDS = ['token', 'clientSecret', 'consumerSecret'] as const;

export class StoredSecretError extends SecretsKeyError {}

type Credentials = Record<string, unknown>;

function credentialsOf(settings: unknown): Credentials | undefined {
  if (typeof settings !== 'object' || settings === null) return undefined;
  const credentials = (settings as { credentials?: unknown }).credentials;
  return typeof credentials === 'object' && credentials !== null ? (credentials as Credentials) : undefined;
}

/** A copy of `settings` with each secret field passed through `fn` (other fields untouched). */
export function mapSecrets<T>(settings: T, fn: (value: string, field: string) => string): T {
  const credentials = credentialsOf(settings);
  if (!credentials) return settings;
  const mapped: Credentials = { ...credentials };
  for (const field of SECRET_FIELDS) {
    const value = mapped[field];
    if (typeof value === 'string' && value !== '') mapped[field] = fn(value, field);
  }
  return { ...(settings as object), credentials: mapped } as T;
}

export function sealSecrets<T>(settings: T, box: SecretBox): T {
  return mapSecrets(settings, (value) => box.seal(value));
}

/**
 * Opens every sealed secret. A value that is not sealed was written before
 * encryption at rest: it is returned as it is, so such a district keeps
 * syncing until `rostersync rotate-secrets` seals it.
 */
export function openSecrets<T>(districtId: string, settings: T, box: SecretBox): T {
  return mapSecrets(settings, (value, field) => {
    if (!isSealed(value)) return value;
    try {
      return box.open(value);
    } catch (err) {
      throw new StoredSecretError(`district '${districtId}' ${field}: ${(err as Error).message}`);
    }
  });
}

// The box travels with the database handle it was opened for (openContext
// binds it), so callers that pass only a Db still use their own context's keys
// rather than whatever the process environment says.
const boxes = new WeakMap<Db, SecretBox>();

export function bindSecretBox(db: Db, box: SecretBox): void {
  boxes.set(db, box);
}

export function secretBoxFor(db: Db): SecretBox {
  return boxes.get(db) ?? SecretBox.fromConfig(process.env);
}
