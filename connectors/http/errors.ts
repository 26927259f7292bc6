export type ProviderErrorKind =
  | 'auth' | 'not-found' | 'client'
  | 'rate-limit' | 'server' | 'network'
  /** The body did not parse as JSON: usually a connection cut mid-page, so worth another try. */
  | 'truncated'
  /** The body parsed but is not the provider's documented shape: retrying will not fix it. */
  | 'malformed';

const RETRYABLE: ReadonlySet<ProviderErrorKind> = new Set(['rate-limit', 'server', 'network', 'truncated']);

/** A provider call that failed; `message` is written for the district's IT admin. */
export class ProviderError extends Error {
  constructor(
    message: string,
    readonly kind: ProviderErrorKind,
    readonly status?: number,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'ProviderError';
  }

  get retryable(): boolean {
    return RETRYABLE.has(this.kind);
  }
}
