import { ProviderError } from '../../connectors/http/errors.js';

/**
 * Socket-level codes Node gives when a connection dies. Which one a lost
 * Postgres backend shows depends on timing: pg_terminate_backend sends 57P01
 * first, but if the socket closes before pg reads that message the query fails
 * with a bare `read ECONNRESET` (seen in CI), which says nothing to an operator.
 */
const SOCKET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

/** SQLSTATEs that mean the session is gone: class 08 (connection exception) and 57P01–57P03 (shutdown, crash, cannot connect now). */
const isLostSessionState = (code: string) => code.startsWith('08') || /^57P0[123]$/.test(code);

/** pg's own messages for a client whose connection ended under it (pg/lib/client.js). */
const PG_CLIENT_LOST = /^Connection terminated|connection error and is not queryable/;

/**
 * Read by shape, not `instanceof Error`: socket errors are made by Node's own
 * realm, which is not the caller's under jest's VM (and need not be elsewhere).
 */
const asError = (err: unknown): { message: string; code?: unknown } | undefined =>
  typeof err === 'object' && err !== null && typeof (err as { message?: unknown }).message === 'string' ? err as { message: string } : undefined;

/** True when the error says the database connection was lost, not that a statement was wrong. */
export function isLostDatabaseConnection(err: unknown): boolean {
  const e = asError(err);
  if (!e || err instanceof ProviderError) return false;
  if (typeof e.code === 'string' && (SOCKET_CODES.has(e.code) || isLostSessionState(e.code))) return true;
  return PG_CLIENT_LOST.test(e.message);
}

/**
 * The reason a run records when it fails, written for whoever reads the run:
 * a lost database connection is named as such, whatever shape the error took,
 * and says that the run's transaction (so the district) was left as it was.
 * Provider errors keep their own message, which is already written for the admin.
 */
export function failureReason(err: unknown): string {
  const message = asError(err)?.message || String(err);
  if (isLostDatabaseConnection(err)) return `lost the connection to Postgres (${message}); the run's transaction rolled back, nothing was applied; trigger a new sync`;
  return message;
}
