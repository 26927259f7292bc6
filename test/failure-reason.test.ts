import pg from 'pg';
import { withDefaultUser } from '../db/connection.js';
import { ProviderError } from '../connectors/http/errors.js';
import { failureReason, isLostDatabaseConnection } from '../src/sync/failure-reason.js';
import { adminQuery } from './helpers/context.js';
import { TcpProxy } from './helpers/tcp-proxy.js';

// The reason a FAILED run records is read by ops. A lost Postgres connection
// shows up in several shapes depending on timing (a 57P01 message, pg's
// "Connection terminated", or a bare socket ECONNRESET, which is what CI saw);
// each is produced here for real and must read as a lost connection.

const url = new URL(withDefaultUser(process.env.TEST_DATABASE_ADMIN_URL ?? 'postgres://localhost:5432/postgres'));

/** The error a query fails with when `kill` ends its connection while it runs. */
async function errorOfKilledQuery(connect: (c: pg.ClientConfig) => pg.Client, kill: (pid: number) => Promise<void>): Promise<Error> {
  const client = connect({ connectionString: url.toString() });
  client.on('error', () => undefined);
  await client.connect();
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  const pending = client.query('SELECT pg_sleep(30)').then(() => { throw new Error('the query was not interrupted'); }, (err: Error) => err);
  await new Promise((r) => setTimeout(r, 100));
  await kill(rows[0]!.pid);
  const err = await pending;
  await client.end().catch(() => undefined);
  return err;
}

test('a backend ended by pg_terminate_backend reads as a lost connection, with Postgres\'s own words kept', async () => {
  const err = await errorOfKilledQuery((c) => new pg.Client(c), async (pid) => { await adminQuery('SELECT pg_terminate_backend($1)', [pid]); });
  expect(isLostDatabaseConnection(err)).toBe(true);
  expect(failureReason(err)).toBe(`lost the connection to Postgres (${err.message}); the run's transaction rolled back, nothing was applied; trigger a new sync`);
});

test('a connection reset under a running query (a bare ECONNRESET) reads as a lost connection', async () => {
  const proxy = new TcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
  const port = await proxy.start();
  try {
    const err = await errorOfKilledQuery((c) => {
      const through = new URL(c.connectionString!);
      through.hostname = '127.0.0.1';
      through.port = String(port);
      return new pg.Client({ connectionString: through.toString() });
    }, async (pid) => {
      proxy.reset();
      // The backend would otherwise sleep on; the test's own cleanup.
      await adminQuery('SELECT pg_cancel_backend($1)', [pid]);
    });
    expect(err.message).toMatch(/ECONNRESET|Connection terminated/);
    expect(failureReason(err)).toMatch(/^lost the connection to Postgres \((read ECONNRESET|Connection terminated unexpectedly)\); the run's transaction rolled back, nothing was applied/);
  } finally {
    await proxy.stop();
  }
});

test('a statement Postgres rejects, and a provider\'s network failure, keep their own message', async () => {
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  const rejected = await client.query('SELECT * FROM no_such_table').then(() => undefined, (err: Error) => err);
  await client.end();
  expect(rejected).toBeInstanceOf(Error);
  expect(isLostDatabaseConnection(rejected)).toBe(false);
  expect(failureReason(rejected)).toBe('relation "no_such_table" does not exist');

  const provider = Object.assign(new ProviderError('Clever: GET /v3.0/users failed: read ECONNRESET', 'network'), { code: 'ECONNRESET' });
  expect(isLostDatabaseConnection(provider)).toBe(false);
  expect(failureReason(provider)).toBe('Clever: GET /v3.0/users failed: read ECONNRESET');
});
