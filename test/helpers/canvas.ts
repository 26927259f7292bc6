import { FakeCanvasServer, type FakeCanvasOptions } from '../../fixtures/canvas/server.js';
import { RosterDistrict, type DistrictSpec } from '../../fixtures/district.js';
import { canvasSectionId, canvasUserId } from '../../fixtures/canvas/ids.js';
import type { CanvasSettings } from '../../src/districts/settings.js';
import type { RecordKind, RecordKinds } from '../../src/domain/model.js';
import type { SnapshotBatch } from '../../connectors/types.js';

export { canvasSectionId, canvasUserId };

export async function startCanvas(spec: DistrictSpec, options: FakeCanvasOptions = {}): Promise<FakeCanvasServer> {
  const server = new FakeCanvasServer(new RosterDistrict(spec), { token: 'TEST_CANVAS_TOKEN', reportPolls: 2, ...options });
  await server.start();
  return server;
}

/** District settings pointing at the fake server, with fast retries for tests. */
export function canvasSettings(server: FakeCanvasServer, over: Partial<CanvasSettings> = {}): CanvasSettings {
  return {
    provider: 'canvas', baseUrl: server.baseUrl, credentials: { token: server.options.token }, accountId: 'self',
    minRetryDelayMs: 10, timeoutMs: 2000, retries: 6, ...over,
  };
}

/** The Canvas ids the fake district's students and teachers are rostered under, and each one's active sections. */
export function expectedRoster(server: FakeCanvasServer): { users: Set<string>; classesOf: Map<string, string[]> } {
  const d = server.district;
  const users = new Set<string>();
  const classesOf = new Map<string, string[]>();
  for (const p of [...d.students.values(), ...d.teachers.values()]) {
    const sections = d.sectionsOf(p.id).map((s) => canvasSectionId(s.id)).sort();
    if (sections.length === 0) continue;
    users.add(canvasUserId(p.id));
    classesOf.set(canvasUserId(p.id), sections);
  }
  return { users, classesOf };
}

export type Canonical = { [K in RecordKind]: RecordKinds[K][] } & { quarantine: unknown[] };

/** All batches of a fetch, each kind sorted by its key: two fetches compare equal when they mean the same. */
export async function collect(batches: AsyncIterable<SnapshotBatch>): Promise<Canonical> {
  const out: Canonical = { orgs: [], academicSessions: [], courses: [], classes: [], users: [], enrollments: [], quarantine: [] };
  for await (const b of batches) (out[b.kind] as unknown[]).push(...b.records);
  const key = (r: unknown) => JSON.stringify(r);
  for (const k of Object.keys(out) as (keyof Canonical)[]) (out[k] as unknown[]).sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  return out;
}
