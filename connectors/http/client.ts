import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import axios, { type AxiosInstance, type AxiosResponse } from 'axios';
import pRetry, { AbortError } from 'p-retry';
import type { z } from 'zod';
import type { Logger } from '../../src/logger.js';
import { ProviderError } from './errors.js';

export interface ProviderHttpOptions {
  /** Human name used in error messages ("Clever", "ClassLink"). */
  providerName: string;
  baseUrl: string;
  /** Adds authentication to a request (bearer token, OAuth signature, …). */
  authorize: (request: { method: 'GET'; url: string }) => Promise<Record<string, string>> | Record<string, string>;
  /** What to tell the admin when the provider refuses our credentials. */
  authHint: string;
  logger: Logger;
  timeoutMs?: number;
  retries?: number;
  minRetryDelayMs?: number;
  /** Longest we will honour a Retry-After before treating the provider as down. */
  maxRateLimitWaitMs?: number;
  signal?: AbortSignal;
}

export interface JsonResponse<T> {
  body: T;
  headers: Record<string, string>;
  status: number;
}

const keepAlive = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };

/**
 * GETs JSON from a provider with the retry policy every connector shares:
 * 429 (honouring Retry-After / X-RateLimit-Reset), 5xx, timeouts, dropped
 * connections and truncated bodies are retried with backoff; 401/403/404 and
 * other 4xx are not, and fail with a message that says what to fix.
 */
export class ProviderHttpClient {
  private readonly axios: AxiosInstance;
  readonly requests = { sent: 0, retried: 0 };

  constructor(private readonly options: ProviderHttpOptions) {
    this.axios = axios.create({
      timeout: options.timeoutMs ?? 30000,
      responseType: 'text',
      transformResponse: (data: unknown) => data,
      validateStatus: () => true,
      httpAgent: keepAlive.http,
      httpsAgent: keepAlive.https,
      maxRedirects: 3,
    });
  }

  /** Resolves a path against the API root, keeping any path prefix the root has. */
  resolve(pathOrUrl: string): string {
    if (/^https?:\/\//.test(pathOrUrl)) return pathOrUrl;
    return this.options.baseUrl.replace(/\/+$/, '') + (pathOrUrl.startsWith('/') ? pathOrUrl : `/${pathOrUrl}`);
  }

  async getJson<S extends z.ZodType>(pathOrUrl: string, schema: S): Promise<JsonResponse<z.infer<S>>> {
    const url = this.resolve(pathOrUrl);
    const { providerName, logger } = this.options;
    return pRetry(async () => {
      try {
        return await this.attempt(url, schema);
      } catch (err) {
        if (err instanceof ProviderError && !err.retryable) throw new AbortError(err);
        throw err;
      }
    }, {
      retries: this.options.retries ?? 6,
      minTimeout: this.options.minRetryDelayMs ?? 500,
      maxTimeout: 10000,
      factor: 2,
      randomize: true,
      signal: this.options.signal,
      onFailedAttempt: async ({ error, attemptNumber, retriesLeft }) => {
        this.requests.retried += 1;
        const wait = error instanceof ProviderError ? error.retryAfterMs : undefined;
        logger.warn({ provider: providerName, url: redactUrl(url), attempt: attemptNumber, retriesLeft, err: error.message, waitMs: wait }, 'provider request failed; retrying');
        if (wait && retriesLeft > 0) await sleep(wait, undefined, { signal: this.options.signal });
      },
    }).catch((err: unknown) => {
      // AbortError wraps the ProviderError; surface the original, message intact.
      const original = err instanceof AbortError ? err.originalError : err;
      if (original instanceof ProviderError) throw original;
      throw new ProviderError(`${providerName}: GET ${redactUrl(url)} failed: ${(original as Error).message}`, 'network');
    });
  }

  private async attempt<S extends z.ZodType>(url: string, schema: S): Promise<JsonResponse<z.infer<S>>> {
    const { providerName } = this.options;
    const where = `GET ${redactUrl(url)}`;
    let response: AxiosResponse<string>;
    try {
      this.requests.sent += 1;
      const headers = await this.options.authorize({ method: 'GET', url });
      response = await this.axios.get<string>(url, { headers: { Accept: 'application/json', ...headers }, signal: this.options.signal });
    } catch (err) {
      const code = (err as { code?: string }).code;
      const reason = code === 'ECONNABORTED' || code === 'ETIMEDOUT' ? 'timed out' : (err as Error).message;
      throw new ProviderError(`${providerName}: ${where} ${reason}`, 'network');
    }
    const { status } = response;
    const headers = Object.fromEntries(Object.entries(response.headers).map(([k, v]) => [k.toLowerCase(), String(v)]));
    const detail = describeErrorBody(response.data);
    if (status === 401 || status === 403) {
      throw new ProviderError(`${providerName} refused our credentials (HTTP ${status}) on ${where}${detail}: ${this.options.authHint}`, 'auth', status);
    }
    if (status === 404) throw new ProviderError(`${providerName}: ${where} not found (HTTP 404)${detail}: check the district's base URL`, 'not-found', status);
    if (status === 429) {
      const waitMs = retryAfterMs(headers, this.options.maxRateLimitWaitMs ?? 120000);
      throw new ProviderError(`${providerName} rate-limited ${where} (HTTP 429)`, 'rate-limit', status, waitMs);
    }
    if (status >= 500) throw new ProviderError(`${providerName}: ${where} failed with HTTP ${status}${detail}`, 'server', status);
    if (status < 200 || status >= 300) throw new ProviderError(`${providerName}: ${where} was rejected with HTTP ${status}${detail}`, 'client', status);

    let parsed: unknown;
    try {
      parsed = JSON.parse(response.data);
    } catch {
      throw new ProviderError(`${providerName}: ${where} returned a body that is not valid JSON (${response.data.length} bytes; truncated page?)`, 'truncated', status);
    }
    const checked = schema.safeParse(parsed);
    if (!checked.success) {
      const first = checked.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
      throw new ProviderError(`${providerName}: ${where} returned a malformed page: ${first}`, 'malformed', status);
    }
    return { body: checked.data, headers, status };
  }
}

function retryAfterMs(headers: Record<string, string>, cap: number): number {
  const retryAfter = headers['retry-after'];
  let ms: number | undefined;
  if (retryAfter !== undefined) {
    const seconds = Number(retryAfter);
    ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(retryAfter) - Date.now();
  } else if (headers['x-ratelimit-reset'] !== undefined) {
    // Clever sends the reset instant as a Unix timestamp in seconds.
    ms = Number(headers['x-ratelimit-reset']) * 1000 - Date.now();
  }
  if (ms === undefined || !Number.isFinite(ms)) return 1000;
  return Math.min(Math.max(ms, 0), cap);
}

function describeErrorBody(body: string): string {
  if (!body) return '';
  try {
    const parsed = JSON.parse(body) as Record<string, unknown>;
    const message = parsed.error ?? parsed.message ?? parsed.imsx_description;
    if (typeof message === 'string') return ` (${message.slice(0, 200)})`;
  } catch {
    // Not JSON: not worth echoing an HTML error page into the run's message.
  }
  return '';
}

/** Query strings can carry tokens (access_token=…); never log them. */
export function redactUrl(url: string): string {
  return url.replace(/([?&](?:access_token|token|oauth_signature|client_secret)=)[^&]*/gi, '$1[redacted]');
}
