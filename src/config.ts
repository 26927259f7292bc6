import { z } from 'zod';

const LogLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

const EnvSchema = z.object({
  DATABASE_URL: z.string().min(1).default('postgres://localhost:5432/rostersync'),
  REDIS_URL: z.string().min(1).default('redis://127.0.0.1:6379'),
  ADMIN_TOKEN: z.string().min(1).optional(),
  PUBLIC_URL: z.url().default('http://localhost:3000'),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  LOG_LEVEL: LogLevel.default('info'),
  QUEUE_PREFIX: z.string().regex(/^[A-Za-z0-9_:-]+$/).default('rostersync'),
  // How long a worker may go silent before BullMQ hands its job to another worker.
  WORKER_LOCK_MS: z.coerce.number().int().positive().default(30000),
  WORKER_STALLED_INTERVAL_MS: z.coerce.number().int().positive().default(30000),
  // A RUNNING run silent this long lost its worker (and its job): the next run of its district takes over.
  RUN_STALE_MS: z.coerce.number().int().positive().default(15 * 60 * 1000),
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
