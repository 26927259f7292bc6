import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import axios, { type AxiosInstance, type AxiosResponse } from 'axios';
import pRetry, { AbortError } from 'p-retry';
import type { z } from 'zod';
import type { Logger } from '../../src/logger.js';
import { ProviderError } from './errors.js';
import { pageDigester } from './page-origin.js';

export interface RawResponse {
  status: number;
  /** Lower-cased header names. */
  headers: Record<string, string>;
  body: string;
  /** `GET <url>` with secrets redacted, for messages. */
  where: string;
}

export interface ProviderHttpOptions {
  /** Human name used in error messages ("Clever", "ClassLink"). */
  providerName: string;
  baseUrl: string;
  /**
   * Adds authentication to a request (bearer token, OAuth signature, …). Called
   * afresh for every request, retry and redirect hop, and only ever for URLs on
   * the base URL's origin.
   */
  authorize: (request: { method: 'GET'; url: string }) => Promise<Record<string, string>> | Record<string, string>;
  /** What to tell the admin when the provider refuses our credentials. */
  authHint: string;
  logger: Logger;
  /**
   * A provider's own reading of a non-2xx answer (Canvas throttles with a 403,
   * say), tried before the shared one; undefined leaves it to the shared one.
   */
  classifyResponse?: (response: RawResponse) => ProviderError | undefined;
  /** Sees every answer's headers (to pace by a rate-limit header, say). */
  onResponse?: (headers: Record<string, string>) => void | Promise<void>;
  /** Total deadline of one request attempt, body included (a provider dripping bytes never trips an idle timeout). */
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
  /** The page's URL and bytes as 64 bits (connectors/http/page-origin.ts): equal digests, equal pages. */
  digest: bigint;
}

const keepAlive = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };

/** Redirect hops followed per request (each one re-authorized). */
const MAX_REDIRECTS = 3;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * GETs from a provider with the retry policy every connector shares:
 * 429 (honouring Retry-After / X-RateLimit-Reset), 5xx, timeouts, dropped
 * connections and truncated bodies are retried with backoff; 401/403/404 and
 * other 4xx are not, and fail with a message that says what to fix.
 * Credentials only ever go to the base URL's origin: a next link or redirect
 * elsewhere is refused. Redirects are followed here, not by axios, so each hop
 * is authorized afresh (OAuth 1.0a nonces are single-use).
 */
export class ProviderHttpClient {
  private readonly axios: AxiosInstance;
  private readonly origin: string;
  readonly requests = { sent: 0, retried: 0 };

  constructor(private readonly options: ProviderHttpOptions) {
    this.origin = new URL(options.baseUrl).origin;
    this.axios = axios.create({
      // Idle/connect timeout; the total deadline is an abort signal per attempt.
      timeout: options.timeoutMs ?? 30000,
      responseType: 'text',
      transformResponse: (data: unknown) => data,
      validateStatus: () => true,
      httpAgent: keepAlive.http,
      httpsAgent: keepAlive.https,
      maxRedirects: 0,
    });
  }

  /** Resolves a path against the API root, keeping any path prefix the root has. */
  resolve(pathOrUrl: string): string {
    if (/^https?:\/\//.test(pathOrUrl)) return pathOrUrl;
    return this.options.baseUrl.replace(/\/+$/, '') + (pathOrUrl.startsWith('/') ? pathOrUrl : `/${pathOrUrl}`);
  }

  async getJson<S extends z.ZodType>(pathOrUrl: string, schema: S): Promise<JsonResponse<z.infer<S>>> {
    const digestOf = await pageDigester();
    return this.withRetries(pathOrUrl, async (url) => {
      const response = await this.send(url, 'application/json');
      return { ...parseJson(this.options.providerName, response, schema), digest: digestOf(url, response.body) };
    });
  }

  /**
   * Downloads a file (a report export, say) as bytes. The first request is
   * authorized; a redirect to another origin (file storage) is followed
   * without credentials, as browsers do.
   */
  async getBytes(pathOrUrl: string): Promise<{ body: Buffer; headers: Record<string, string> }> {
    return this.withRetries(pathOrUrl, async (url) => {
      const response = await this.send(url, '*/*', { binary: true });
      return { body: response.bytes!, headers: response.headers };
    });
  }

  private async withRetries<T>(pathOrUrl: string, attempt: (url: string) => Promise<T>): Promise<T> {
    const url = this.resolve(pathOrUrl);
    const { providerName, logger } = this.options;
    return pRetry(async () => {
      try {
        return await attempt(url);
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

  /**
   * One attempt: the request and its redirect hops under one total deadline,
   * classified into a ProviderError unless it is a 2xx.
   */
  private async send(firstUrl: string, accept: string, opts: { binary?: boolean } = {}): Promise<RawResponse & { bytes?: Buffer }> {
    const { providerName } = this.options;
    const deadlineMs = this.options.timeoutMs ?? 30000;
    const deadline = AbortSignal.timeout(deadlineMs);
    const signal = this.options.signal ? AbortSignal.any([this.options.signal, deadline]) : deadline;
    let url = firstUrl;
    let authorized = true;
    for (let hop = 0; ; hop += 1) {
      const where = `GET ${redactUrl(url)}`;
      const sameOrigin = new URL(url).origin === this.origin;
      if (!sameOrigin && authorized) {
        throw new ProviderError(`${providerName}: refusing to send the district's credentials to ${new URL(url).origin} (${where}): only ${this.origin}, the district's base URL, is trusted`, 'client');
      }
      let response: AxiosResponse<string | ArrayBuffer>;
      try {
        this.requests.sent += 1;
        const headers = authorized ? await this.options.authorize({ method: 'GET', url }) : {};
        response = await this.axios.get(url, { headers: { Accept: accept, ...headers }, signal, responseType: opts.binary ? 'arraybuffer' : 'text' });
      } catch (err) {
        // authorize() failing (a refused client secret, say) is already classified.
        if (err instanceof ProviderError) throw err;
        const code = (err as { code?: string }).code;
        const reason = deadline.aborted ? `did not complete within ${deadlineMs} ms`
          : code === 'ECONNABORTED' || code === 'ETIMEDOUT' ? 'timed out' : (err as Error).message;
        throw new ProviderError(`${providerName}: ${where} ${reason}`, 'network');
      }
      const headers = Object.fromEntries(Object.entries(response.headers).map(([k, v]) => [k.toLowerCase(), String(v)]));
      await this.options.onResponse?.(headers);
      const { status } = response;
      if (REDIRECTS.has(status) && headers.location) {
        if (hop >= MAX_REDIRECTS) throw new ProviderError(`${providerName}: ${where} redirected more than ${MAX_REDIRECTS} times`, 'client', status);
        url = new URL(headers.location, url).toString();
        // A download may leave for file storage, without our credentials; an API call may not.
        if (new URL(url).origin !== this.origin) {
          if (!opts.binary) throw new ProviderError(`${providerName}: ${where} redirected to ${new URL(url).origin}; refusing to follow it with the district's credentials`, 'client', status);
          authorized = false;
        }
        continue;
      }
      const bytes = opts.binary ? Buffer.from(response.data as ArrayBuffer) : undefined;
      const raw: RawResponse = { status, headers, where, body: opts.binary ? (status >= 300 ? bytes!.toString('utf8').slice(0, 2000) : '') : (response.data as string) };
      if (status < 200 || status >= 300) throw this.options.classifyResponse?.(raw) ?? classify(providerName, raw, this.options.authHint, this.options.maxRateLimitWaitMs ?? 120000);
      return { ...raw, bytes };
    }
  }
}

/** The shared reading of a non-2xx answer. */
function classify(providerName: string, { status, headers, body, where }: RawResponse, authHint: string, maxRateLimitWaitMs: number): ProviderError {
  const detail = describeErrorBody(body);
  if (status === 401 || status === 403) {
    return new ProviderError(`${providerName} refused our credentials (HTTP ${status}) on ${where}${detail}: ${authHint}`, 'auth', status);
  }
  if (status === 404) return new ProviderError(`${providerName}: ${where} not found (HTTP 404)${detail}: check the district's base URL`, 'not-found', status);
  if (status === 429) return new ProviderError(`${providerName} rate-limited ${where} (HTTP 429)`, 'rate-limit', status, retryAfterMs(headers, maxRateLimitWaitMs));
  if (status >= 500) return new ProviderError(`${providerName}: ${where} failed with HTTP ${status}${detail}`, 'server', status);
  return new ProviderError(`${providerName}: ${where} was rejected with HTTP ${status}${detail}`, 'client', status);
}

/** A 2xx body, parsed once and checked against the page's schema. */
function parseJson<S extends z.ZodType>(providerName: string, response: RawResponse, schema: S): Omit<JsonResponse<z.infer<S>>, 'digest'> {
  const { status, headers, body, where } = response;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new ProviderError(`${providerName}: ${where} returned a body that is not valid JSON (${body.length} bytes; truncated page?)`, 'truncated', status);
  }
  const checked = schema.safeParse(parsed);
  if (!checked.success) {
    const first = checked.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new ProviderError(`${providerName}: ${where} returned a malformed page: ${first}`, 'malformed', status);
  }
  return { body: checked.data, headers, status };
}

export function retryAfterMs(headers: Record<string, string>, cap: number): number {
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
