import { z } from 'zod';

const LogLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

// Checked here so a malformed key stops every command at start, not the first sync.
const SecretsKey = z.string().refine((v) => Buffer.from(v.trim(), 'base64').length === 32, 'must be 32 random bytes in base64 (openssl rand -base64 32)');

const EnvSchema = z.object({
  DATABASE_URL: z.string().min(1).default('postgres://localhost:5432/rostersync'),
  REDIS_URL: z.string().min(1).default('redis://127.0.0.1:6379'),
  /** Bearer token of the admin API; `serve` wants at least 24 characters. */
  ADMIN_TOKEN: z.string().min(1).optional(),
  /** Bearer token a metrics scraper may use for GET /metrics instead of ADMIN_TOKEN (at least 24 characters). */
  METRICS_TOKEN: z.string().min(1).optional(),
  PUBLIC_URL: z.url().default('http://localhost:3000'),
  /** Where a successful sign-in lands; defaults to `${PUBLIC_URL}/`. */
  APP_URL: z.url().optional(),
  /** Signs sign-in sessions and keys the LTI store; `serve` refuses to start without it. */
  SESSION_SECRET: z.string().min(32, 'must be at least 32 characters (openssl rand -base64 48)').optional(),
  /**
   * AES-256-GCM key (base64 of 32 bytes) sealing provider and SSO secrets at
   * rest; SECRETS_KEY_PREVIOUS still opens what the old key sealed while
   * `rostersync rotate-secrets` re-seals it.
   */
  SECRETS_KEY: SecretsKey.optional(),
  SECRETS_KEY_PREVIOUS: SecretsKey.optional(),
  /** Interface `serve` binds to. */
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  LOG_LEVEL: LogLevel.default('info'),
  QUEUE_PREFIX: z.string().regex(/^[A-Za-z0-9_:-]+$/).default('rostersync'),
  // How long a worker may go silent before BullMQ hands its job to another worker.
  WORKER_LOCK_MS: z.coerce.number().int().positive().default(30000),
  WORKER_STALLED_INTERVAL_MS: z.coerce.number().int().positive().default(30000),
  // A RUNNING run silent this long lost its worker (and its job): the next run of its district takes over.
  RUN_STALE_MS: z.coerce.number().int().positive().default(15 * 60 * 1000),
  // Postgres session limits: no statement, lock wait or forgotten transaction runs for ever
  // (a silent partition mid-apply would otherwise keep the district's advisory lock held).
  // Connections per process: a run uses up to two at once (its transaction and its heartbeat).
  PG_POOL_MAX: z.coerce.number().int().min(2).max(1000).default(10),
  PG_STATEMENT_TIMEOUT_MS: z.coerce.number().int().positive().default(10 * 60 * 1000),
  PG_LOCK_TIMEOUT_MS: z.coerce.number().int().positive().default(2 * 60 * 1000),
  PG_IDLE_TX_TIMEOUT_MS: z.coerce.number().int().positive().default(60 * 1000),
  // HELD and FAILED runs' staged snapshots (names, emails) are dropped after this long.
  STAGE_RETENTION_HOURS: z.coerce.number().positive().default(72),
});

export type Config = z.infer<typeof EnvSchema>;

export class ConfigError extends Error {}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // Empty strings in the environment mean "unset", as in a copied .env.example.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = EnvSchema.safeParse(cleaned);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ConfigError(`invalid environment: ${issues}`);
  }
  return parsed.data;
}
