import { readFileSync } from 'node:fs';
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
const percent = (name: string) => z.coerce.number({ error: `${name} must be a number` }).min(0, `${name} must be between 0 and 100`).max(100, `${name} must be between 0 and 100`);
// Upper bounds keep values inside Postgres integer columns: out of range is a
// clear usage error here, never a raw database message.
const MAX_COUNT = 10_000_000;
const count = (name: string) => intString(name, 0).max(MAX_COUNT, `${name} must be at most ${MAX_COUNT.toLocaleString('en-US')}`);

export const DistrictId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'district id: letters, digits, dot, dash, underscore; at most 63 characters');

// Five fields (minute hour day month weekday): cron-parser also takes a
// leading seconds field, which would let one district queue a sync every second.
export const Cron = z.string()
  .refine((s) => s.trim().split(/\s+/).length !== 6, { message: 'schedules run at most once a minute: use 5 cron fields (minute hour day month weekday), not 6 with seconds', abort: true })
  .refine((s) => {
    try {
      cronParser.parseExpression(s);
      return s.trim().split(/\s+/).length === 5;
    } catch {
      return false;
    }
  }, 'not a valid cron expression (e.g. "0 2 * * *" for 02:00 daily)');

/** A license product code, as stored and as SSO reports it. */
export const ProductCode = z.string({ error: 'is required' })
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/, 'product code: letters, digits, dot, dash, underscore, colon; starts with a letter or digit; at most 64 characters');

export const DistrictAddFlags = z.object({
  provider: z.enum(PROVIDERS, { error: `must be one of ${PROVIDERS.join(', ')}` }),
  baseUrl: z.string({ error: 'is required' }),
  token: z.string().optional(),
  tokenFile: z.string().optional(),
  clientId: z.string().optional(),
  clientSecret: z.string().optional(),
  clientSecretFile: z.string().optional(),
  tokenUrl: z.string().optional(),
  consumerKey: z.string().optional(),
  consumerSecret: z.string().optional(),
  consumerSecretFile: z.string().optional(),
  schedule: Cron.optional(),
  pageSize: intString('page size', 1).max(10000).optional(),
  fullEveryHours: z.coerce.number({ error: 'must be a number of hours' }).positive('must be more than 0').optional(),
  deletionThresholdPct: percent('threshold').optional(),
  deletionThresholdMin: count('threshold').optional(),
  lossThresholdPct: percent('threshold').optional(),
  quarantineThresholdMin: count('threshold').optional(),
  quarantineThresholdPct: percent('threshold').optional(),
  accountId: z.string().optional(),
  signatureMethod: z.string().optional(),
});

export const LicenseSetFlags = z.object({
  product: ProductCode,
  seats: count('seats'),
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
export const PlanFlags = z.object({
  plan: z.boolean().optional(),
  section: z.enum(['users', 'enrollments', 'seats'], { error: 'must be users, enrollments or seats' }).optional(),
  page: intString('page', 1).optional(),
  pageSize: intString('page size', 1).max(1000).optional(),
});
export const PruneFlags = z.object({ runsDays: intString('days', 1), auditDays: intString('days', 1) });
export const WorkerFlags = z.object({ concurrency: intString('concurrency', 1).max(64).optional() });

/**
 * A secret given on the command line (visible to every user in `ps`), in a
 * file (`--x-file`, trailing newline dropped) or in the environment, in that
 * order. Giving both the flag and the file is refused as ambiguous.
 */
export function resolveSecret(spec: { flag: string; value?: string; file?: string; env: string }): string | undefined {
  if (spec.value !== undefined && spec.file !== undefined) throw new UsageError(`give --${spec.flag} or --${spec.flag}-file, not both`);
  if (spec.value !== undefined) return spec.value;
  if (spec.file !== undefined) {
    let text: string;
    try {
      text = readFileSync(spec.file, 'utf8');
    } catch (err) {
      throw new UsageError(`--${spec.flag}-file: cannot read ${spec.file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    const secret = text.replace(/\r?\n$/, '');
    if (secret.trim() === '') throw new UsageError(`--${spec.flag}-file: ${spec.file} is empty`);
    return secret;
  }
  const fromEnv = process.env[spec.env];
  return fromEnv === undefined || fromEnv === '' ? undefined : fromEnv;
}
