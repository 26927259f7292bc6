import { CLEVER, cleverPayload } from '../fixtures/payloads/clever.js';
import { ORG, oneRoster11, oneRoster12 } from '../fixtures/payloads/oneroster.js';
import type { CleverReplayServer, OneRosterReplayServer, Payload } from '../fixtures/payloads/server.js';
import { prng } from '../fixtures/prng.js';
import type { TestEnv } from './helpers/context.js';
import { addPool, syncNow } from './helpers/district.js';
import { addReplayDistrict, changes, createPayloadEnv, startClever, startOneRoster, storedState } from './helpers/payloads.js';

// Property: the order records arrive in (within a page, and across pages, with
// any page size) never changes the outcome. Every payload is replayed in its
// written order and then under several seeded shuffles and page sizes, each
// into a fresh district; the stored users, roles, schools, classes,
// memberships and seats must be identical every time. Some pools are scarce,
// so who gets a seat and who waits must not depend on arrival order either.

const today = new Date().toISOString().slice(0, 10);
const SEEDS = [11, 23, 37, 41, 59];
let t: TestEnv;
beforeAll(async () => {
  t = await createPayloadEnv();
  t.startWorker();
});
afterAll(() => t.close());

type Start = (payload: Payload, options: { shuffleSeed?: number; maxPage?: number }) => Promise<CleverReplayServer | OneRosterReplayServer>;
const CASES: [string, () => Payload, Start, { product: string; seats: number; schools: string[] }[], boolean][] = [
  ['Clever v3.0', cleverPayload, (p, o) => startClever(p, o), [{ product: 'READ', seats: 1, schools: [] }, { product: 'K2', seats: 100, schools: [CLEVER.school2] }], false],
  ['OneRoster 1.2', () => oneRoster12(today), (p, o) => startOneRoster('1.2', p, o), [{ product: 'READ', seats: 3, schools: [] }, { product: 'LAB-B', seats: 100, schools: [ORG.schoolB] }], true],
  ['OneRoster 1.1', () => oneRoster11(today), (p, o) => startOneRoster('1.1', p, o), [{ product: 'MUSIC-B', seats: 100, schools: [ORG.schoolB] }], true],
];

describe.each(CASES)('%s', (label, payload, start, pools, full) => {
  const prefix = label.toLowerCase().replace(/[^a-z0-9]+/g, '-');

  async function replay(district: string, options: { shuffleSeed?: number; maxPage?: number }) {
    const server = await start(payload(), options);
    try {
      await addReplayDistrict(t.ctx.db, district, server);
      for (const p of pools) await addPool(t.ctx, district, p.product, p.seats, { schools: p.schools });
      const run = await syncNow(t.ctx, district, { full });
      expect(run).toMatchObject({ status: 'SUCCEEDED', counts: { recordsQuarantined: 0 } });
      return storedState(t.ctx.db, district);
    } finally {
      await server.stop();
    }
  }

  test('shuffling records within and across pages never changes the outcome', async () => {
    const baseline = await replay(`${prefix}-base`, {});
    expect(Object.keys(baseline.users).length).toBeGreaterThan(3);
    for (const seed of SEEDS) {
      const maxPage = 1 + Math.floor(prng(seed)() * 5);
      const state = await replay(`${prefix}-s${seed}`, { shuffleSeed: seed, maxPage });
      expect({ seed, maxPage, state }).toEqual({ seed, maxPage, state: baseline });
    }
  });

  test('a shuffled resync of the same district changes nothing', async () => {
    const district = `${prefix}-resync`;
    const before = await replay(district, {});
    const server = await start(payload(), { shuffleSeed: 97, maxPage: 2 });
    try {
      await addReplayDistrict(t.ctx.db, district, server);
      const run = await syncNow(t.ctx, district, { full });
      expect(run.status).toBe('SUCCEEDED');
      expect(changes(run.counts)).toEqual({});
      expect(await storedState(t.ctx.db, district)).toEqual(before);
    } finally {
      await server.stop();
    }
  });
});
