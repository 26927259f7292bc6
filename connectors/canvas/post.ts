import { setTimeout as sleep } from 'node:timers/promises';
import axios from 'axios';
import type { z } from 'zod';
import { ProviderError } from '../http/errors.js';
import { redactUrl, type RawResponse } from '../http/client.js';

export interface PostOptions {
  url: string;
  /** The same origin check, headers and classification as every GET. */
  headers: () => Promise<Record<string, string>>;
  classify: (raw: RawResponse) => ProviderError | undefined;
  onResponse: (headers: Record<string, string>) => void;
  timeoutMs: number;
  retries: number;
  minRetryDelayMs: number;
  signal?: AbortSignal;
}

/**
 * A form POST to Canvas (starting an account report). The shared client only
 * GETs, so this does the one POST the connector needs. Only a throttled or
 * unanswered request is retried: Canvas creates nothing when it throttles,
 * whereas a 5xx may have started a report, and a second one would just run twice.
 */
export async function postForm<S extends z.ZodType>(form: URLSearchParams, schema: S, o: PostOptions): Promise<z.infer<S>> {
  const where = `POST ${redactUrl(o.url)}`;
  for (let attempt = 0; ; attempt += 1) {
    let raw: RawResponse;
    try {
      const res = await axios.post<string>(o.url, form.toString(), {
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...(await o.headers()) },
        responseType: 'text', transformResponse: (d: unknown) => d, validateStatus: () => true, maxRedirects: 0,
        timeout: o.timeoutMs, signal: o.signal,
      });
      const headers = Object.fromEntries(Object.entries(res.headers).map(([k, v]) => [k.toLowerCase(), String(v)]));
      o.onResponse(headers);
      raw = { status: res.status, headers, body: res.data, where };
    } catch (err) {
      if (attempt < o.retries && !o.signal?.aborted) {
        await sleep(o.minRetryDelayMs * 2 ** attempt, undefined, { signal: o.signal });
        continue;
      }
      throw new ProviderError(`Canvas: ${where} failed: ${(err as Error).message}`, 'network');
    }
    if (raw.status >= 200 && raw.status < 300) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw.body);
      } catch {
        throw new ProviderError(`Canvas: ${where} returned a body that is not JSON`, 'truncated', raw.status);
      }
      const checked = schema.safeParse(parsed);
      if (!checked.success) throw new ProviderError(`Canvas: ${where} returned a malformed report: ${checked.error.issues[0]?.message ?? ''}`, 'malformed', raw.status);
      return checked.data;
    }
    const error = o.classify(raw) ?? new ProviderError(`Canvas: ${where} was rejected with HTTP ${raw.status}`, raw.status === 404 ? 'not-found' : raw.status >= 500 ? 'server' : 'client', raw.status);
    if (error.kind === 'rate-limit' && attempt < o.retries) {
      await sleep(error.retryAfterMs ?? o.minRetryDelayMs, undefined, { signal: o.signal });
      continue;
    }
    throw error;
  }
}
