import type { Db } from '../../db/connection.js';

// The refusal codes and statuses of DESIGN.md "Sign-in (SSO)".
export const REFUSAL_STATUS = {
  invalid_state: 400,
  invalid_token: 401,
  provider_error: 403,
  unknown_platform: 400,
  unknown_deployment: 403,
  unknown_tenant: 403,
  wrong_district: 403,
  not_rostered: 403,
  account_deleted: 403,
} as const;
export type RefusalCode = keyof typeof REFUSAL_STATUS;

/** A sign-in refused: the user sees `message`, the audit row keeps `detail`. */
export class SignInRefusal extends Error {
  constructor(readonly code: RefusalCode, message: string, readonly detail: Record<string, unknown> = {}) {
    super(message);
  }
  get status(): number {
    return REFUSAL_STATUS[this.code];
  }
}

export interface SignInEvent {
  districtId: string | null;
  provider: string;
  /** The provider's user id when known. */
  subject: string | null;
  outcome: 'signed-in' | RefusalCode;
  detail?: Record<string, unknown>;
}

/** Every sign-in and refusal leaves an audit row (district '' when the identity named none we know). */
export async function auditSignIn(db: Db, e: SignInEvent): Promise<void> {
  await db.insertInto('audit_log').values({
    district_id: e.districtId ?? '',
    run_id: null,
    entity: 'sso',
    entity_key: e.subject ?? '',
    action: e.outcome === 'signed-in' ? 'sign-in' : `refused:${e.outcome}`,
    detail: JSON.stringify({ provider: e.provider, ...e.detail }),
  }).execute();
}
