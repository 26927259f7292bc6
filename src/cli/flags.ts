import cronParser from 'cron-parser';
import { z } from 'zod';
import { PROVIDERS } from '../domain/model.js';

// Every flag the CLI takes is checked here before anything touches the database.

export class UsageError extends Error {}

export function parseFlags<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const result = schema.safeParse(input);
  if (!result.success) {
    throw new UsageError(result.error.issues.map((i) => `${i.path.length ? `--${String(i.path[0]).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: ` : ''}${i.message}`).join('; '));
  }
  return result.data;
}

const list = z.string().transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean));
const intString = (name: string, min: number) => z.coerce.number({ error: `${name} must be a number` }).int(`${name} must be a whole number`).min(min, `${name} must be at least ${min}`);

export const DistrictId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'district id: letters, digits, dot, dash, underscore; at most 63 characters');

export const Cron = z.string().refine((s) => {
  try {
    cronParser.parseExpression(s);
    return s.trim().split(/\s+/).length >= 5;
  } catch {
    return false;
  }
}, 'not a valid cron expression (e.g. "0 2 * * *" for 02:00 daily)');

export const DistrictAddFlags = z.object({
  provider: z.enum(PROVIDERS, { error: `must be one of ${PROVIDERS.join(', ')}` }),
  baseUrl: z.string({ error: 'is required' }),
  token: z.string().optional(),
  clientId: z.string().optional(),
  clientSecret: z.string().optional(),
  tokenUrl: z.string().optional(),
  consumerKey: z.string().optional(),
  consumerSecret: z.string().optional(),
  schedule: Cron.optional(),
  pageSize: intString('page size', 1).max(10000).optional(),
  fullEveryHours: z.coerce.number({ error: 'must be a number of hours' }).positive('must be more than 0').optional(),
  deletionThresholdPct: z.coerce.number().min(0).max(100).optional(),
  deletionThresholdMin: intString('threshold', 0).optional(),
});

export const LicenseSetFlags = z.object({
  product: z.string().min(1, 'is required'),
  seats: intString('seats', 0),
  schools: list.optional(),
  grades: list.optional(),
  courses: list.optional(),
});

export const SyncFlags = z.object({
  dryRun: z.boolean().optional(),
  full: z.boolean().optional(),
  wait: z.boolean().optional(),
  timeout: intString('timeout', 1).optional(),
});

export const UsersFlags = z.object({ status: z.enum(['ACTIVE', 'DELETED'], { error: 'must be ACTIVE or DELETED' }).optional() });
export const LimitFlags = z.object({ limit: intString('limit', 1).max(1000).optional() });
export const WorkerFlags = z.object({ concurrency: intString('concurrency', 1).max(64).optional() });
