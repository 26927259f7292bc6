// Where a run's time went, read from the worker's own pino lines (src/sync/execute.ts
// logs 'snapshot fetched' {ms} ('snapshot staged' before the mirror), 'stage
// completed from the mirror' {ms} (added to the fetch; the mirror loads during it), 'plan computed' {loadMs, reconcileMs} (in-memory
// reconcile) or {mergeMs, planMs} (reconcile in Postgres, issue #11), 'plan applied'
// {applyMs, clearMs} at info), so a missed target points at a phase.
import { z } from 'zod';

export interface Phases { fetchMs?: number; loadMs?: number; reconcileMs?: number; applyMs?: number; clearMs?: number; heapMbAtPlan?: number;
  /** Which path the Canvas connector took ('Canvas roster read', connectors/canvas/connector.ts). */
  canvasPath?: string;
}

const Line = z.object({
  level: z.number(),
  msg: z.string(),
  ms: z.number().optional(),
  loadMs: z.number().optional(),
  reconcileMs: z.number().optional(),
  mergeMs: z.number().optional(),
  planMs: z.number().optional(),
  applyMs: z.number().optional(),
  clearMs: z.number().optional(),
  heapMb: z.number().optional(),
  path: z.string().nullable().optional(),
}).loose();

/** Folds one worker log line into `phases`; returns the parsed line, or null when it is not pino JSON. */
export function notePhase(phases: Phases, text: string): z.infer<typeof Line> | null {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return null;
  }
  const parsed = Line.safeParse(raw);
  if (!parsed.success) return null;
  const l = parsed.data;
  if (l.msg === 'snapshot staged' || l.msg === 'snapshot fetched' || l.msg === 'stage completed from the mirror') {
    phases.fetchMs = (phases.fetchMs ?? 0) + (l.ms ?? 0);
  }
  // Loading local state, or merging the staged snapshot's duplicates; then planning.
  if (l.msg === 'plan computed') Object.assign(phases, { loadMs: l.loadMs ?? l.mergeMs, reconcileMs: l.reconcileMs ?? l.planMs, heapMbAtPlan: l.heapMb });
  if (l.msg === 'Canvas roster read') phases.canvasPath = l.path ?? 'none';
  if (l.msg === 'plan applied') Object.assign(phases, { applyMs: l.applyMs, clearMs: l.clearMs });
  return l;
}

export function formatPhases(p: Phases): string {
  const s = (ms?: number) => (ms === undefined ? '?' : (ms / 1000).toFixed(1));
  return `${s(p.fetchMs)} / ${s(p.loadMs)} / ${s(p.reconcileMs)} / ${s(p.applyMs === undefined ? undefined : p.applyMs + (p.clearMs ?? 0))}`;
}
