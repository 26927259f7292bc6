import { pino, type Logger } from 'pino';

// Credentials can reach a log line through district settings, HTTP errors or
// job payloads; these paths are censored wherever they appear.
export const REDACT_PATHS = [
  'token', '*.token', '*.*.token',
  'accessToken', '*.accessToken',
  'clientSecret', '*.clientSecret', '*.*.clientSecret',
  'consumerSecret', '*.consumerSecret', '*.*.consumerSecret',
  'password', '*.password',
  'authorization', '*.authorization', '*.headers.authorization', '*.*.headers.authorization',
  'settings.credentials', '*.settings.credentials',
  'credentials', '*.credentials',
];

export function createLogger(level: string = process.env.LOG_LEVEL ?? 'info', destination?: NodeJS.WritableStream): Logger {
  const options = { level, base: { service: 'rostersync' }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  // Logs go to stderr so that `--json` output on stdout stays machine-readable.
  return destination ? pino(options, destination as never) : pino(options, pino.destination(2));
}

export type { Logger };
