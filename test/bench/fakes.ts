// The fake provider servers the bench syncs from, each started as its own
// process (so its CPU and memory are not the worker's), and the district
// settings that point a district at it.
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { DistrictSettings } from '../../src/districts/settings.js';

/** One benchmarked configuration: Canvas counts twice, once per path its connector can take. */
export const BENCH_PROVIDERS = ['clever', 'classlink', 'canvas-report', 'canvas-rest', 'schoology'] as const;
export type BenchProvider = (typeof BENCH_PROVIDERS)[number];
const ALIASES: Record<string, readonly BenchProvider[]> = { all: BENCH_PROVIDERS, canvas: ['canvas-report', 'canvas-rest'] };

/** `clever,canvas` → the configurations to run, in the order given, without repeats. */
export function parseProviders(list: string): BenchProvider[] {
  const out: BenchProvider[] = [];
  for (const name of list.split(',').map((p) => p.trim()).filter(Boolean)) {
    const expanded = ALIASES[name] ?? (BENCH_PROVIDERS.includes(name as BenchProvider) ? [name as BenchProvider] : null);
    if (!expanded) throw new Error(`--providers: unknown provider '${name}' (known: ${[...BENCH_PROVIDERS, ...Object.keys(ALIASES)].join(', ')})`);
    for (const p of expanded) if (!out.includes(p)) out.push(p);
  }
  if (out.length === 0) throw new Error('--providers: name at least one provider');
  return out;
}

export interface DistrictShape { students: number; sections: string; perStudent: string; schools: string; pageSize: number }

// The JSON line each fixtures/*/serve.ts prints once it listens.
const CleverInfo = z.object({ url: z.url(), token: z.string() });
const OneRosterInfo = z.object({ baseUrl: z.url(), tokenUrl: z.url(), auth: z.object({ clientId: z.string(), clientSecret: z.string() }) });
const CanvasInfo = z.object({ url: z.url(), baseUrl: z.url(), token: z.string(), reports: z.string() });
const SchoologyInfo = z.object({ url: z.url(), baseUrl: z.url(), consumerKey: z.string(), consumerSecret: z.string() });

export interface FakeSpec {
  /** Arguments to `tsx` (script first). */
  args: string[];
  /** From the server's first stdout line: the district settings, and the origin serving /__control/*. */
  connect(info: unknown): { settings: DistrictSettings; control: string };
}

export function fakeSpec(provider: BenchProvider, shape: DistrictShape, fixture: (p: string) => string): FakeSpec {
  const district = ['--students', String(shape.students), '--sections', shape.sections, '--per-student', shape.perStudent, '--schools', shape.schools, '--seed', '42'];
  switch (provider) {
    case 'clever':
      return {
        // The fixture's server (fixtures/clever/serve.ts) over a compact copy of the same
        // district, rendering pages on request: it serves a million students (issue #11).
        args: [fileURLToPath(new URL('./clever-serve.ts', import.meta.url)), ...district],
        connect: (raw) => {
          const info = CleverInfo.parse(raw);
          return { settings: { provider: 'clever', baseUrl: info.url, credentials: { token: info.token }, pageSize: shape.pageSize }, control: info.url };
        },
      };
    case 'classlink':
      return {
        args: [fixture('oneroster/serve.ts'), ...district, '--version', '1.2', '--max-limit', String(shape.pageSize)],
        connect: (raw) => {
          const info = OneRosterInfo.parse(raw);
          return {
            settings: { provider: 'classlink', baseUrl: info.baseUrl, credentials: { ...info.auth, tokenUrl: info.tokenUrl }, pageSize: shape.pageSize },
            control: new URL(info.baseUrl).origin,
          };
        },
      };
    case 'canvas-report':
    case 'canvas-rest':
      return {
        // The worker's connector runs in 'auto': it asks for the provisioning report and
        // falls back to REST when Canvas answers 403 "unauthorized" (a token without report rights).
        args: [fixture('canvas/serve.ts'), ...district, '--reports', provider === 'canvas-report' ? 'allowed' : 'forbidden-403'],
        connect: (raw) => {
          const info = CanvasInfo.parse(raw);
          // Canvas caps per_page at 100 (lib/api.rb), which the connector always asks for: no page size here.
          return { settings: { provider: 'canvas', baseUrl: info.baseUrl, credentials: { token: info.token }, accountId: 'self' }, control: info.url };
        },
      };
    case 'schoology':
      return {
        // No --rate-limit: the bench measures rostersync, not an assumed Schoology throttle
        // (test/bench/schoology-requests.ts converts the request count into time at a given rate).
        args: [fixture('schoology/serve.ts'), ...district],
        connect: (raw) => {
          const info = SchoologyInfo.parse(raw);
          // Schoology serves at most 200 per page; the connector asks for that when no page size is set.
          return {
            settings: { provider: 'schoology', baseUrl: info.baseUrl, credentials: { consumerKey: info.consumerKey, consumerSecret: info.consumerSecret }, signatureMethod: 'HMAC-SHA1' },
            control: info.url,
          };
        },
      };
  }
}

const Stats = z.object({ requests: z.number().int(), byStatus: z.record(z.string(), z.number().int()) });
export type ServerStats = z.infer<typeof Stats>;

/** What the fake server has answered since it started (fixtures/fake-server.ts `/__control/stats`). */
export async function serverStats(control: string): Promise<ServerStats> {
  // Once more on a dropped connection: fetch may reuse a kept-alive socket the
  // fake closed after a long report download (undici: "other side closed").
  const res = await fetch(`${control}/__control/stats`).catch(() => fetch(`${control}/__control/stats`));
  if (!res.ok) throw new Error(`${control}/__control/stats answered ${res.status}`);
  return Stats.parse(await res.json());
}

/** Requests between two stats readings, and the ones not answered 200, by status. */
export function requestsBetween(before: ServerStats, after: ServerStats): { requests: number; notOk: Record<string, number> } {
  const notOk: Record<string, number> = {};
  for (const [status, n] of Object.entries(after.byStatus)) {
    const diff = n - (before.byStatus[status] ?? 0);
    if (status !== '200' && diff > 0) notOk[status] = diff;
  }
  return { requests: after.requests - before.requests, notOk };
}
