import { createHmac } from 'node:crypto';
import { SCHOOLOGY_BATCH_RECORDS, SCHOOLOGY_LISTS_IN_FLIGHT, SchoologyConnector } from '../connectors/schoology/connector.js';
import { oauth1BaseString, oauth1Header, oauth1Signature, parseOAuthHeader } from '../connectors/http/oauth1.js';
import { ProviderError } from '../connectors/http/errors.js';
import type { SnapshotBatch } from '../connectors/types.js';
import type { FakeSchoologyServer } from '../fixtures/schoology/server.js';
import { createLogger } from '../src/logger.js';
import { SGY_KEY, SGY_SECRET, schoologySettings, startSchoology } from './helpers/schoology.js';

// Schoology's two-legged OAuth 1.0a (developers.schoology.com/api-documentation/authentication):
// realm "Schoology API", an empty oauth_token, HMAC-SHA1 (RFC 5849 §3.4.2) or PLAINTEXT (§3.4.4).

const SPEC = { seed: 31, schools: 2, students: 40, sections: 6, enrollmentsPerStudent: 2 };
const logger = createLogger('silent');

async function drain(connector: SchoologyConnector): Promise<SnapshotBatch[]> {
  const out: SnapshotBatch[] = [];
  for await (const b of connector.fetch({ full: true })) out.push(b);
  return out;
}

describe('signatures', () => {
  const params = {
    oauth_consumer_key: 'dpf43f3p2l4k3l03',
    oauth_nonce: 'kllo9940pd9333jh',
    oauth_signature_method: 'HMAC-SHA1',
    oauth_timestamp: '1191242096',
    oauth_token: '',
    oauth_version: '1.0',
  };
  const url = 'https://api.schoology.com/v1/users?start=0&limit=200';

  test('HMAC-SHA1 matches a signature computed by hand from the RFC 5849 base string', () => {
    // §3.4.1: METHOD & encoded base URI & encoded, sorted parameters (query and oauth_*, the empty token included).
    const base = 'GET&https%3A%2F%2Fapi.schoology.com%2Fv1%2Fusers&'
      + 'limit%3D200%26oauth_consumer_key%3Ddpf43f3p2l4k3l03%26oauth_nonce%3Dkllo9940pd9333jh%26'
      + 'oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1191242096%26oauth_token%3D%26oauth_version%3D1.0%26start%3D0';
    expect(oauth1BaseString('GET', url, params)).toBe(base);
    // §3.4.2: key = encoded consumer secret & encoded token secret (empty: two-legged).
    const expected = createHmac('sha1', 'kd94hf93k423kf44&').update(base).digest('base64');
    expect(oauth1Signature('GET', url, params, 'kd94hf93k423kf44')).toBe(expected);
    // A secret with reserved characters is percent-encoded into the key.
    const odd = createHmac('sha1', 'a%20b%26c&').update(base).digest('base64');
    expect(oauth1Signature('GET', url, params, 'a b&c')).toBe(odd);
  });

  test('PLAINTEXT is the encoded secret and "&", sent as %26, as in Schoology\'s own example', () => {
    const header = oauth1Header('GET', url, 'dpf43f3p2l4k3l03', 'kd94hf93k423kf44', { signatureMethod: 'PLAINTEXT', realm: 'Schoology API', token: '' });
    expect(header).toMatch(/^OAuth realm="Schoology%20API", /);
    expect(header).toContain('oauth_token=""');
    expect(header).toContain('oauth_signature="kd94hf93k423kf44%26"');
    expect(parseOAuthHeader(header)).toMatchObject({ realm: 'Schoology API', oauth_signature_method: 'PLAINTEXT', oauth_signature: 'kd94hf93k423kf44&' });
  });

  test('each header carries a fresh nonce and a signature over its own parameters', () => {
    const a = parseOAuthHeader(oauth1Header('GET', url, SGY_KEY, SGY_SECRET, { signatureMethod: 'HMAC-SHA1', realm: 'Schoology API', token: '' }))!;
    const b = parseOAuthHeader(oauth1Header('GET', url, SGY_KEY, SGY_SECRET, { signatureMethod: 'HMAC-SHA1', realm: 'Schoology API', token: '' }))!;
    expect(a.oauth_nonce).not.toBe(b.oauth_nonce);
    const { realm: _realm, oauth_signature: signature, ...signed } = a;
    const base = oauth1BaseString('GET', url, signed);
    expect(signature).toBe(createHmac('sha1', `${SGY_SECRET}&`).update(base).digest('base64'));
  });
});

describe('the fake server checks requests as Schoology does', () => {
  let server: FakeSchoologyServer;
  beforeAll(async () => {
    server = await startSchoology(SPEC);
  });
  afterAll(() => server.stop());

  const get = (path: string, authorization: string) => fetch(`${server.baseUrl}${path}`, { headers: { authorization, accept: 'application/json' } });
  const sign = (path: string, secret = SGY_SECRET) => oauth1Header('GET', `${server.baseUrl}${path}`, SGY_KEY, secret, { signatureMethod: 'HMAC-SHA1', realm: 'Schoology API', token: '' });

  test('a replayed timestamp/nonce is refused with 401, like Schoology', async () => {
    const header = sign('/roles');
    expect((await get('/roles', header)).status).toBe(200);
    const replay = await get('/roles', header);
    expect(replay.status).toBe(401);
    expect(await replay.text()).toContain('Duplicate timestamp/nonce combination, possible replay attack');
  });

  test('a wrong secret, a stale timestamp and a missing realm are refused; pages carry total as a string and links.next', async () => {
    expect((await get('/users?start=0&limit=10', sign('/users?start=0&limit=10', 'wrong'))).status).toBe(401);
    const stale = oauth1Header('GET', `${server.baseUrl}/roles`, SGY_KEY, SGY_SECRET, { signatureMethod: 'HMAC-SHA1', realm: 'Schoology API', token: '' })
      .replace(/oauth_timestamp="(\d+)"/, (_m, ts: string) => `oauth_timestamp="${Number(ts) - 3600}"`);
    expect((await get('/roles', stale)).status).toBe(401);
    const noRealm = oauth1Header('GET', `${server.baseUrl}/roles`, SGY_KEY, SGY_SECRET, { signatureMethod: 'HMAC-SHA1', token: '' });
    expect((await get('/roles', noRealm)).status).toBe(401);

    const page = await get('/users?start=0&limit=10', sign('/users?start=0&limit=10'));
    const body = await page.json() as { user: unknown[]; total: unknown; links: { next?: string } };
    expect(body.user).toHaveLength(10);
    expect(body.total).toBe(String(SPEC.students + server.district.teachers.size + 2));
    expect(body.links.next).toBe(`${server.baseUrl}/users?start=10&limit=10`);
  });
});

describe('the connector signs every request, retry and redirect afresh', () => {
  test('303 redirects are followed with a fresh nonce and signature', async () => {
    const server = await startSchoology(SPEC, { redirects: ['/gradingperiods', '/users', '/courses/'] });
    try {
      const batches = await drain(new SchoologyConnector(schoologySettings(server), logger));
      expect(batches.filter((b) => b.kind === 'users').flatMap((b) => b.records)).toHaveLength(SPEC.students + server.district.teachers.size + 1);
      const redirected = server.requests.filter((r) => r.status === 303);
      expect(redirected.length).toBeGreaterThan(3);
      // Each 303 was followed by a request to the same list with redirected=1, carrying a nonce never used before.
      // Sections are read a few at a time, so the hop is the next request to that list, not the next in the log.
      for (const r of redirected) {
        const i = server.authLog.findIndex((a) => a.path === r.path);
        const target = new URL(r.path, 'http://x');
        target.searchParams.set('redirected', '1');
        const hop = server.authLog.slice(i + 1).find((a) => a.path === target.pathname + target.search);
        expect(hop).toBeDefined();
        expect(hop!.nonce).not.toBe(server.authLog[i]!.nonce);
        expect(hop!.refused).toBeNull();
      }
      expect(server.authLog.filter((a) => a.refused)).toEqual([]);
      expect(new Set(server.noncesSeen()).size).toBe(server.authLog.length);
    } finally {
      await server.stop();
    }
  });

  test('a retried request (cut off after it was authenticated) is signed anew', async () => {
    const server = await startSchoology(SPEC);
    server.faults.push({ path: '/v1/courses?', truncate: true, times: 2 });
    try {
      await drain(new SchoologyConnector(schoologySettings(server), logger));
      const tries = server.authLog.filter((a) => a.path.startsWith('/v1/courses?'));
      expect(tries).toHaveLength(3);
      expect(new Set(tries.map((a) => a.nonce)).size).toBe(3);
      expect(tries.every((a) => a.refused === null)).toBe(true);
    } finally {
      await server.stop();
    }
  });

  test('PLAINTEXT on request; a server that refuses the method fails the fetch as an auth error', async () => {
    const plain = await startSchoology(SPEC, { signatureMethods: ['PLAINTEXT'] });
    const hmacOnly = await startSchoology(SPEC, { signatureMethods: ['HMAC-SHA1'] });
    try {
      const batches = await drain(new SchoologyConnector(schoologySettings(plain, { signatureMethod: 'PLAINTEXT' }), logger));
      expect(batches.some((b) => b.kind === 'enrollments')).toBe(true);
      expect(plain.authLog.every((a) => a.method === 'PLAINTEXT' && a.refused === null)).toBe(true);

      const err = await drain(new SchoologyConnector(schoologySettings(hmacOnly, { signatureMethod: 'PLAINTEXT' }), logger)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProviderError);
      expect(err).toMatchObject({ kind: 'auth', status: 401 });
      expect((err as Error).message).toContain('Schoology refused our credentials (HTTP 401) on GET');
      expect((err as Error).message).not.toContain(SGY_SECRET);
    } finally {
      await plain.stop();
      await hmacOnly.stop();
    }
  });
});

describe('sections are read a few at a time, in order', () => {
  const WIDE = { seed: 37, schools: 2, students: 150, sections: 24, enrollmentsPerStudent: 3 };

  test('members come out in course and list order whatever order the answers land in, gathered into batches across sections, never more than the bound in flight', async () => {
    // Uneven latency by section id: a later section often answers before an earlier one.
    const slow = await startSchoology(WIDE, { latencyMs: (path) => (/\/sections\/(\d+)\/enrollments/.test(path) ? (Number(/\/sections\/(\d+)/.exec(path)![1]) % 5) * 12 : 3) });
    try {
      const batches = await drain(new SchoologyConnector(schoologySettings(slow, { pageSize: 200 }), logger));
      expect(slow.maxInFlight).toBeGreaterThan(1);
      expect(slow.maxInFlight).toBeLessThanOrEqual(SCHOOLOGY_LISTS_IN_FLIGHT);

      // The oracle: each class's members read from the server one list at a time, in the order the classes were handed on.
      const classes = batches.filter((b) => b.kind === 'classes').flatMap((b) => b.records).map((c) => (c as { sourcedId: string }).sourcedId);
      expect(classes).toHaveLength(WIDE.sections);
      const expected: string[] = [];
      for (const id of classes) {
        const path = `/sections/${id}/enrollments?start=0&limit=200`;
        const authorization = oauth1Header('GET', `${slow.baseUrl}${path}`, SGY_KEY, SGY_SECRET, { signatureMethod: 'HMAC-SHA1', realm: 'Schoology API', token: '' });
        const page = await (await fetch(`${slow.baseUrl}${path}`, { headers: { authorization } })).json() as { enrollment: { uid: string; status: string }[] };
        for (const e of page.enrollment) if (['1', '2', '5'].includes(String(e.status))) expected.push(`${id}:${e.uid}`);
      }
      const enrollmentBatches = batches.filter((b) => b.kind === 'enrollments');
      const got = enrollmentBatches.flatMap((b) => b.records).map((e) => { const en = e as { classSourcedId: string; userSourcedId: string }; return `${en.classSourcedId}:${en.userSourcedId}`; });
      expect(expected.length).toBeGreaterThan(WIDE.students);
      expect(got).toEqual(expected);

      // Gathered across sections, rather than one batch per section: about one
      // list in eight ends a batch, by its digest (connectors/schoology/gather.ts),
      // none past the cap; each batch is tagged with the lists it holds.
      expect(enrollmentBatches.length).toBeLessThan(WIDE.sections / 2);
      for (const b of enrollmentBatches) expect(b.records.length).toBeLessThanOrEqual(4 * SCHOOLOGY_BATCH_RECORDS + 200);
      expect(enrollmentBatches.every((b) => typeof b.origin === 'bigint')).toBe(true);
      expect(new Set(enrollmentBatches.map((b) => b.origin)).size).toBe(enrollmentBatches.length);
      expect(slow.authLog.filter((a) => a.refused)).toEqual([]);
      expect(new Set(slow.noncesSeen()).size).toBe(slow.authLog.length);
    } finally {
      await slow.stop();
    }
  });

  test('a failed section list fails the fetch: nothing after it is handed on as if complete', async () => {
    const server = await startSchoology(WIDE);
    const third = server.sid([...server.district.sections.keys()][2]!);
    server.faults.push({ path: `/v1/sections/${third}/enrollments`, status: 404, times: 1 });
    try {
      const seen: SnapshotBatch[] = [];
      const err = await (async () => { for await (const b of new SchoologyConnector(schoologySettings(server), logger).fetch({ full: true })) seen.push(b); })().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProviderError);
      expect((err as Error).message).toContain(`/sections/${third}/enrollments`);
      // Users come after every section: a fetch cut short must not have reached them.
      expect(seen.some((b) => b.kind === 'users')).toBe(false);
    } finally {
      await server.stop();
    }
  });
});

describe('wire format details the connector copes with', () => {
  test('a school without buildings is its own campus; pages without links.next are still walked by the string total', async () => {
    const server = await startSchoology(SPEC, { noBuildings: true, dropNextLinks: true });
    try {
      const batches = await drain(new SchoologyConnector(schoologySettings(server, { pageSize: 10 }), logger));
      const orgs = batches.filter((b) => b.kind === 'orgs').flatMap((b) => b.records);
      expect(orgs).toEqual([expect.objectContaining({ sourcedId: '344232', type: 'school' })]);
      const classes = batches.filter((b) => b.kind === 'classes').flatMap((b) => b.records);
      expect(classes.length).toBe(SPEC.sections);
      expect(new Set(classes.map((c) => (c as { schoolSourcedId: string }).schoolSourcedId))).toEqual(new Set(['344232']));
      const users = batches.filter((b) => b.kind === 'users').flatMap((b) => b.records);
      expect(users).toHaveLength(SPEC.students + server.district.teachers.size + 1);
      const starts = server.requestsTo('/v1/users?').map((r) => new URL(r.path, 'http://x').searchParams.get('start'));
      expect(starts).toEqual(['0', '10', '20', '30', '40']);
    } finally {
      await server.stop();
    }
  });

  test('a record that fails its schema is quarantined with its ids, never failing the page', async () => {
    const server = await startSchoology(SPEC);
    const sectionId = server.sid([...server.district.sections.keys()][0]!);
    server.faults.push({
      path: `/v1/sections/${sectionId}/enrollments`,
      body: JSON.stringify({ enrollment: [{ id: '1', uid: '1000001', admin: 0, status: '1' }, { id: '2', uid: '1000002', admin: 'yes', status: '1' }], total: '2', links: {} }),
      times: 1,
    });
    try {
      const batches = await drain(new SchoologyConnector(schoologySettings(server), logger));
      const quarantined = batches.filter((b) => b.kind === 'quarantine').flatMap((b) => b.records);
      expect(quarantined).toEqual([expect.objectContaining({ kind: 'enrollments', sourcedId: '2', refs: { classes: [sectionId], users: ['1000002'] } })]);
      const enrollments = batches.filter((b) => b.kind === 'enrollments').flatMap((b) => b.records);
      expect(enrollments).toContainEqual(expect.objectContaining({ userSourcedId: '1000001', classSourcedId: sectionId, role: 'student', status: 'active' }));
    } finally {
      await server.stop();
    }
  });

  test('next links printed with another scheme on the API host are followed at the base URL', async () => {
    const server = await startSchoology(SPEC, { otherSchemeLinks: true });
    try {
      const batches = await drain(new SchoologyConnector(schoologySettings(server, { pageSize: 10 }), logger));
      expect(batches.filter((b) => b.kind === 'users').flatMap((b) => b.records)).toHaveLength(SPEC.students + server.district.teachers.size + 1);
      expect(server.requestsTo('/v1/users?').map((r) => new URL(r.path, 'http://x').searchParams.get('start'))).toEqual(['0', '10', '20', '30', '40']);
    } finally {
      await server.stop();
    }
  });
});
