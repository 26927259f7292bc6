import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';

type Timestamp = ColumnType<Date, Date | string, Date | string>;
/** A timestamp the database fills in by default. */
type DefaultTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type Json<T> = ColumnType<T, string, string>;

export type UserStatus = 'ACTIVE' | 'DELETED';
export type EntityStatus = 'ACTIVE' | 'RETIRED';
export type RunStatus = 'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'HELD';

export interface DistrictsTable {
  id: string;
  provider: string;
  settings: Json<unknown>;
  schedule: string | null;
  deletion_threshold_pct: number;
  deletion_threshold_min: number;
  loss_threshold_pct: Generated<number>;
  quarantine_threshold_min: Generated<number>;
  quarantine_threshold_pct: Generated<number>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

interface RosterEntity {
  id: Generated<string>;
  district_id: string;
  provider: string;
  sourced_id: string;
  status: Generated<EntityStatus>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface SchoolsTable extends RosterEntity { name: string; identifier: string | null }
export interface TermsTable extends RosterEntity { title: string; start_date: string | null; end_date: string | null }
export interface CoursesTable extends RosterEntity { title: string; course_code: string | null }
export interface ClassesTable extends RosterEntity {
  title: string;
  class_code: string | null;
  course_sourced_id: string | null;
  school_sourced_id: string | null;
  term_sourced_ids: string[];
  grades: string[];
}

export interface UsersTable {
  id: Generated<string>;
  district_id: string;
  provider: string;
  sourced_id: string;
  role: string;
  status: Generated<UserStatus>;
  given_name: string;
  family_name: string;
  email: string | null;
  username: string | null;
  sis_id: string | null;
  grades: string[];
  school_sourced_ids: string[];
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
  deleted_at: Timestamp | null;
}

export interface EnrollmentsTable {
  id: Generated<string>;
  district_id: string;
  user_id: string;
  class_id: string;
  role: string;
  begin_date: string | null;
  end_date: string | null;
  started_at: DefaultTimestamp;
  ended_at: Timestamp | null;
  ended_reason: string | null;
}

export interface LicensePoolsTable {
  id: Generated<string>;
  district_id: string;
  product: string;
  seats: number;
  scope: Json<{ schools: string[]; grades: string[]; courses: string[] }>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface SeatAssignmentsTable {
  id: Generated<string>;
  pool_id: string;
  user_id: string;
  assigned_at: DefaultTimestamp;
  released_at: Timestamp | null;
  release_reason: string | null;
  run_id: string | null;
}

export interface WaitlistTable {
  pool_id: string;
  user_id: string;
  queued_at: DefaultTimestamp;
}

export interface SyncRunsTable {
  id: Generated<string>;
  district_id: string;
  trigger: string;
  status: RunStatus;
  dry_run: boolean;
  full_snapshot: boolean;
  delta_since: Timestamp | null;
  approved: Generated<boolean>;
  phase: string | null;
  progress: Json<Record<string, unknown>> | null;
  counts: Json<Record<string, number>> | null;
  guard: Json<Record<string, unknown>> | null;
  error: string | null;
  attempts: Generated<number>;
  created_at: DefaultTimestamp;
  started_at: Timestamp | null;
  heartbeat_at: Timestamp | null;
  staged_at: Timestamp | null;
  staged_pages: number | null;
  /** Whether the fetch that staged the snapshot saw each record key once (null: not known). */
  staged_keys_distinct: boolean | null;
  finished_at: Timestamp | null;
}

export interface RunStageTable {
  run_id: string;
  seq: number;
  kind: string;
  records: number;
  /** Pages staged before migration 006 (JSON); null since: the batch's rows are in its typed stage table. */
  data: string | null;
}

/** A district's mirror: the kept stage of its last applied complete snapshot (db/migrations/007). */
export interface SnapshotMirrorsTable {
  district_id: string;
  provider: string;
  run_id: string;
  /** The mirror run's date (YYYY-MM-DD): what was current is a function of it. */
  as_of: string;
  /** Nothing but the mirror's own apply has changed the district since. */
  quiet: boolean;
  registered_at: DefaultTimestamp;
}

/** What a complete fetch made of each page it tagged (db/migrations/009): the rows' content hashes, by the batch's salted origin. */
export interface PageMemoTable {
  district_id: string;
  /** A bigint: read as text. */
  key: string;
  /** The run whose fetch last made or used the entry. */
  run_id: string;
  /** That fetch tagged every batch (its entries name its whole snapshot). */
  covering: Generated<boolean>;
  /** The rows' hashes, 8 bytes each (little-endian). */
  hashes: Buffer;
}

export interface RunPlanItemsTable {
  run_id: string;
  seq: number;
  section: string;
  action: string;
  sourced_id: string;
  name: string | null;
  role: string | null;
  class_sourced_id: string | null;
  product: string | null;
  reason: string | null;
}

export interface AuditLogTable {
  id: Generated<string>;
  district_id: string;
  run_id: string | null;
  entity: string;
  entity_key: string;
  action: string;
  detail: Json<Record<string, unknown>> | null;
  at: DefaultTimestamp;
}

export interface Database {
  districts: DistrictsTable;
  schools: SchoolsTable;
  terms: TermsTable;
  courses: CoursesTable;
  classes: ClassesTable;
  users: UsersTable;
  enrollments: EnrollmentsTable;
  license_pools: LicensePoolsTable;
  seat_assignments: SeatAssignmentsTable;
  waitlist: WaitlistTable;
  sync_runs: SyncRunsTable;
  run_stage: RunStageTable;
  run_plan_items: RunPlanItemsTable;
  snapshot_mirrors: SnapshotMirrorsTable;
  page_memo: PageMemoTable;
  audit_log: AuditLogTable;
  // --- Sign-in (OIDC, issue #9): db/migrations/003_sso.ts ---
  sso_apps: SsoAppsTable;
  sso_tenants: SsoTenantsTable;
  sso_states: SsoStatesTable;
  sso_sessions: SsoSessionsTable;
  // --- end sign-in ---
  // --- LTI 1.3 launches (issue #10): db/migrations/004_lti.ts ---
  lti_registrations: LtiRegistrationsTable;
  lti_deployments: LtiDeploymentsTable;
  lti_nonces: LtiNoncesTable;
  lti_launches: LtiLaunchesTable;
  // --- end LTI ---
}

export type DistrictRow = Selectable<DistrictsTable>;
export type SyncRunRow = Selectable<SyncRunsTable>;
export type NewSyncRun = Insertable<SyncRunsTable>;

// --- Sign-in (OIDC, issue #9) ---
export interface SsoAppsTable {
  id: Generated<string>;
  provider: string;
  issuer: string;
  client_id: string;
  client_secret_sealed: string;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface SsoTenantsTable {
  district_id: string;
  provider: string;
  app_id: string;
  tenant: string;
  api_url: string;
  jit: Generated<boolean>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface SsoStatesTable {
  state_hash: string;
  browser_hash: string;
  provider: string;
  district_id: string;
  nonce: string;
  code_verifier: string;
  expires_at: Timestamp;
}

export interface SsoSessionsTable {
  id_hash: string;
  user_id: string;
  district_id: string;
  via: string;
  created_at: DefaultTimestamp;
  expires_at: Timestamp;
}
// --- end sign-in ---

// --- LTI 1.3 launches (issue #10) ---
export interface LtiRegistrationsTable {
  id: Generated<string>;
  platform: string;
  issuer: string;
  client_id: string;
  auth_url: string;
  token_url: string;
  jwks_url: string;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface LtiDeploymentsTable {
  registration_id: string;
  deployment_id: string;
  district_id: string;
  match: string;
  created_at: DefaultTimestamp;
}

export interface LtiNoncesTable {
  issuer: string;
  nonce: string;
  expires_at: Timestamp;
}

export interface LtiLaunchesTable {
  id: Generated<string>;
  district_id: string;
  user_id: string;
  registration_id: string;
  deployment_id: string;
  subject: string;
  context_id: string | null;
  context_title: string | null;
  resource_link_id: string | null;
  roles: string[];
  nrps_url: string | null;
  launched_at: DefaultTimestamp;
}
// --- end LTI ---
