import { RosterDistrict, type DistrictSpec } from '../../fixtures/district.js';
import { FakeSchoologyServer, type FakeSchoologyOptions } from '../../fixtures/schoology/server.js';
import { upsertDistrict } from '../../src/districts/repository.js';
import type { SchoologySettings } from '../../src/districts/settings.js';
import type { AppContext } from '../../src/context.js';

export const SGY_KEY = 'sgy-consumer-key';
export const SGY_SECRET = 'sgy-consumer-secret';

export async function startSchoology(spec: DistrictSpec, options: Partial<FakeSchoologyOptions> = {}): Promise<FakeSchoologyServer> {
  const server = new FakeSchoologyServer(new RosterDistrict(spec), { consumerKey: SGY_KEY, consumerSecret: SGY_SECRET, ...options });
  await server.start();
  return server;
}

export function schoologySettings(server: FakeSchoologyServer, extra: Partial<SchoologySettings> = {}): SchoologySettings {
  return {
    provider: 'schoology', baseUrl: server.baseUrl, credentials: { consumerKey: SGY_KEY, consumerSecret: SGY_SECRET },
    signatureMethod: 'HMAC-SHA1', pageSize: 25, minRetryDelayMs: 10, timeoutMs: 2000, retries: 6, ...extra,
  };
}

/** Registers a Schoology district against the fake server, with fast retries for tests. */
export async function addSchoologyDistrict(ctx: AppContext, id: string, server: FakeSchoologyServer, extra: Partial<SchoologySettings> = {}, guard?: { deletionThresholdMin?: number; deletionThresholdPct?: number }) {
  return upsertDistrict(ctx.db, { id, schedule: null, settings: schoologySettings(server, extra), guard });
}
