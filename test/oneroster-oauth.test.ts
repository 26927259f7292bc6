import { createHmac } from 'node:crypto';
import { oauth1Header, oauth1Signature, oauthEncode, parseOAuthHeader } from '../connectors/oneroster/oauth.js';
import { mapUser } from '../connectors/oneroster/map.js';
import { OrUser } from '../connectors/oneroster/wire.js';
import { OneRosterConnector } from '../connectors/oneroster/connector.js';
import { FakeOneRosterServer } from '../fixtures/oneroster/server.js';
import { RosterDistrict } from '../fixtures/district.js';
import { createLogger } from '../src/logger.js';

const TODAY = new Date().toISOString().slice(0, 10);

// The fake server checks signatures with the same function the client signs
// with, so this pins the signature base string to RFC 5849 §3.4.1 by hand.
test('the OAuth 1.0a signature base string follows RFC 5849 (encoding, sorting, query parameters)', () => {
  const url = "https://roster.example.com/ims/oneroster/v1p1/users?limit=2&filter=dateLastModified%3E%272026-01-01T00%3A00%3A00Z%27&offset=0&a=b%20c&a=a";
  const oauth = { oauth_consumer_key: 'key', oauth_nonce: 'n0nce', oauth_signature_method: 'HMAC-SHA256', oauth_timestamp: '1700000000', oauth_version: '1.0' };
  const params = [
    'a=a', 'a=b%20c', "filter=dateLastModified%3E%272026-01-01T00%3A00%3A00Z%27", 'limit=2',
    'oauth_consumer_key=key', 'oauth_nonce=n0nce', 'oauth_signature_method=HMAC-SHA256', 'oauth_timestamp=1700000000', 'oauth_version=1.0', 'offset=0',
  ].join('&');
  const base = `GET&${encodeURIComponent('https://roster.example.com/ims/oneroster/v1p1/users')}&${encodeURIComponent(params)}`;
  const expected = createHmac('sha256', 's3cret&').update(base).digest('base64');
  expect(oauth1Signature('GET', url, oauth, 's3cret')).toBe(expected);
  expect(oauthEncode("it's (a) test*!~")).toBe('it%27s%20%28a%29%20test%2A%21~');
});

test('a signed header round-trips, and any change to the request breaks it', () => {
  const url = 'https://roster.example.com/ims/oneroster/v1p1/classes?limit=100&offset=200';
  const params = parseOAuthHeader(oauth1Header('GET', url, 'ck', 'cs'))!;
  expect(params).toMatchObject({ oauth_consumer_key: 'ck', oauth_signature_method: 'HMAC-SHA256', oauth_version: '1.0' });
  expect(oauth1Signature('GET', url, params, 'cs')).toBe(params.oauth_signature);
  expect(oauth1Signature('GET', url.replace('offset=200', 'offset=300'), params, 'cs')).not.toBe(params.oauth_signature);
  expect(oauth1Signature('GET', url, params, 'other')).not.toBe(params.oauth_signature);
});

test('1.1 and 1.2 users map to the same canonical user; unrostered roles are dropped', () => {
  const v11 = OrUser.parse({ sourcedId: 'u1', status: 'active', enabledUser: 'false', givenName: 'Ada', familyName: 'Lovelace', role: 'student', orgs: [{ sourcedId: 's1', type: 'org' }], grades: ['05'], username: 'ada' });
  const v12 = OrUser.parse({ sourcedId: 'u1', status: 'active', enabledUser: false, givenName: 'Ada', familyName: 'Lovelace', username: 'ada', grades: ['05'],
    roles: [{ roleType: 'primary', role: 'student', org: { sourcedId: 's1' } }] });
  expect(mapUser(v11, TODAY)).toEqual(mapUser(v12, TODAY));
  expect(mapUser(v11, TODAY)).toMatchObject({ role: 'student', enabled: false, orgSourcedIds: ['s1'], grades: ['05'] });
  expect(mapUser(OrUser.parse({ sourcedId: 'g', status: 'active', givenName: 'G', familyName: 'P', role: 'guardian' }), TODAY)).toBeNull();
  expect(mapUser(OrUser.parse({ sourcedId: 'p', status: 'tobedeleted', givenName: 'P', familyName: 'Q', role: 'principal' }), TODAY)).toMatchObject({ role: 'administrator', status: 'tobedeleted' });
});

// RFC 6749 §5.2: a refused client is answered 401 invalid_client. Every page
// request (and every retry, and the page fetched ahead) needs a token; a
// refused secret must reach the token endpoint once per run, not once per request.
test('a token endpoint that refuses the client (401 invalid_client) is asked once per run', async () => {
  const server = new FakeOneRosterServer(new RosterDistrict({ seed: 5, schools: 1, students: 10, sections: 2, enrollmentsPerStudent: 1 }),
    { version: '1.2', auth: { type: 'oauth2', clientId: 'c', clientSecret: 'right' } });
  await server.start();
  try {
    const connector = new OneRosterConnector({
      provider: 'classlink', baseUrl: server.baseUrl, credentials: { clientId: 'c', clientSecret: 'wrong', tokenUrl: server.tokenUrl },
      pageSize: 5, minRetryDelayMs: 5, retries: 4, timeoutMs: 2000,
    }, createLogger('silent'));
    const drain = async () => { for await (const _ of connector.fetch({ full: true })) { /* nothing arrives */ } };
    await expect(drain()).rejects.toThrow(/token endpoint refused the client credentials \(HTTP 401\)/);
    // A second pass of the same run (a caller retrying) does not ask again either.
    await expect(drain()).rejects.toThrow(/refused the client credentials/);
    expect(server.requestsTo('/oauth/token')).toHaveLength(1);
    expect(server.requestsTo('/oauth/token')[0]!.status).toBe(401);
    // Nothing was fetched without a token.
    expect(server.requests.filter((r) => !r.path.startsWith('/oauth/token'))).toEqual([]);
  } finally {
    await server.stop();
  }
});

test('a 400 invalid_client is remembered too; a passing 5xx from the token endpoint is not', async () => {
  const server = new FakeOneRosterServer(new RosterDistrict({ seed: 6, schools: 1, students: 10, sections: 2, enrollmentsPerStudent: 1 }),
    { version: '1.2', auth: { type: 'oauth2', clientId: 'c', clientSecret: 's' } });
  await server.start();
  try {
    const { ClientCredentialsToken } = await import('../connectors/oneroster/oauth.js');
    server.faults.push({ path: '/oauth/token', status: 503, times: 1 });
    const flaky = new ClientCredentialsToken({ tokenUrl: server.tokenUrl, clientId: 'c', clientSecret: 's', timeoutMs: 2000 });
    await expect(flaky.get()).rejects.toThrow(/HTTP 503/);
    await expect(flaky.get()).resolves.toMatch(/^[0-9a-f]{48}$/);
    expect(server.requestsTo('/oauth/token')).toHaveLength(2);

    server.requests.length = 0;
    server.faults.push({ path: '/oauth/token', status: 400, body: undefined, times: 5 });
    const refused = new ClientCredentialsToken({ tokenUrl: server.tokenUrl, clientId: 'c', clientSecret: 's', timeoutMs: 2000 });
    await expect(refused.get()).rejects.toThrow(/refused the client credentials \(HTTP 400\)/);
    await expect(refused.get()).rejects.toThrow(/HTTP 400/);
    expect(server.requestsTo('/oauth/token')).toHaveLength(1);
  } finally {
    await server.stop();
  }
});
