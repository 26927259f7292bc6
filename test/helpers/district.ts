import { FakeCleverServer } from '../../fixtures/clever/server.js';
import { RosterDistrict, type DistrictSpec } from '../../fixtures/district.js';
import { upsertDistrict } from '../../src/districts/repository.js';
import type { AppContext } from '../../src/context.js';
import { setLicensePool } from '../../src/sync/ops.js';
import { triggerSync } from '../../jobs/trigger.js';
import { waitForRun } from '../../src/sync/wait.js';
import type { RunView } from '../../src/sync/runs.js';
import { listLicenses, listUsers } from '../../src/queries.js';

export const SMALL: DistrictSpec = { seed: 7, schools: 3, students: 120, sections: 18, enrollmentsPerStudent: 3 };

export async function startClever(spec: DistrictSpec = SMALL): Promise<FakeCleverServer> {
  const server = new FakeCleverServer(new RosterDistrict(spec), 'TEST_TOKEN');
  await server.start();
  return server;
}

/** Registers a Clever district pointing at the fake server, with fast retries for tests. */
export async function addCleverDistrict(ctx: AppContext, id: string, server: FakeCleverServer, extra: { token?: string; pageSize?: number; guardMin?: number; guardPct?: number; lossPct?: number } = {}) {
  return upsertDistrict(ctx.db, {
    id,
    settings: {
      provider: 'clever', baseUrl: server.url, credentials: { token: extra.token ?? server.token },
      pageSize: extra.pageSize ?? 25, minRetryDelayMs: 10, timeoutMs: 2000, retries: 6,
    },
    schedule: null,
    guard: { deletionThresholdMin: extra.guardMin ?? 25, deletionThresholdPct: extra.guardPct ?? 5, ...(extra.lossPct === undefined ? {} : { lossThresholdPct: extra.lossPct }) },
  });
}

export async function addPool(ctx: AppContext, districtId: string, product: string, seats: number, scope: Partial<{ schools: string[]; grades: string[]; courses: string[] }> = {}) {
  return setLicensePool(ctx, districtId, { product, seats, scope: { schools: [], grades: [], courses: [], ...scope } });
}

export async function syncNow(ctx: AppContext, districtId: string, opts: { dryRun?: boolean; full?: boolean } = {}): Promise<RunView> {
  const { run } = await triggerSync(ctx, districtId, { trigger: 'cli', ...opts });
  return waitForRun(ctx.db, run.id, { timeoutMs: 60000, intervalMs: 50 });
}

/** Everything a run could change in a district (accounts, classes, seats, wait-lists), to compare before and after a fault. */
export async function districtState(ctx: AppContext, districtId: string) {
  return { users: await listUsers(ctx.db, districtId), licenses: await listLicenses(ctx.db, districtId) };
}
