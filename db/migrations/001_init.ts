import { sql, type Kysely } from 'kysely';

// Roster entities share one shape: keyed by (district, provider, sourcedId), and
// retired rather than deleted so that history (enrollments, audit) keeps its targets.
const rosterTables = {
  schools: sql`name text NOT NULL, identifier text`,
  terms: sql`title text NOT NULL, start_date date, end_date date`,
  courses: sql`title text NOT NULL, course_code text`,
  classes: sql`title text NOT NULL, class_code text, course_sourced_id text, school_sourced_id text,
    term_sourced_ids text[] NOT NULL DEFAULT '{}', grades text[] NOT NULL DEFAULT '{}'`,
};

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE districts (
      id text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
      provider text NOT NULL CHECK (provider IN ('clever','classlink','canvas','schoology')),
      settings jsonb NOT NULL,
      schedule text,
      deletion_threshold_pct real NOT NULL DEFAULT 5 CHECK (deletion_threshold_pct >= 0),
      deletion_threshold_min integer NOT NULL DEFAULT 25 CHECK (deletion_threshold_min >= 0),
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    )`.execute(db);

  for (const [table, columns] of Object.entries(rosterTables)) {
    await sql`
      CREATE TABLE ${sql.table(table)} (
        id bigserial PRIMARY KEY,
        district_id text NOT NULL REFERENCES districts(id) ON DELETE CASCADE,
        provider text NOT NULL,
        sourced_id text NOT NULL,
        status text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE','RETIRED')),
        ${columns},
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (district_id, provider, sourced_id)
      )`.execute(db);
  }

  await sql`
    CREATE TABLE users (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      district_id text NOT NULL REFERENCES districts(id) ON DELETE CASCADE,
      provider text NOT NULL,
      sourced_id text NOT NULL,
      role text NOT NULL CHECK (role IN ('student','teacher','administrator')),
      status text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE','DELETED')),
      given_name text NOT NULL,
      family_name text NOT NULL,
      email text,
      username text,
      grades text[] NOT NULL DEFAULT '{}',
      school_sourced_ids text[] NOT NULL DEFAULT '{}',
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      deleted_at timestamptz,
      UNIQUE (district_id, provider, sourced_id)
    )`.execute(db);
  await sql`CREATE INDEX users_district_status ON users (district_id, status)`.execute(db);

  await sql`
    CREATE TABLE enrollments (
      id bigserial PRIMARY KEY,
      district_id text NOT NULL REFERENCES districts(id) ON DELETE CASCADE,
      user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
      class_id bigint NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
      role text NOT NULL,
      begin_date date,
      end_date date,
      started_at timestamptz NOT NULL DEFAULT now(),
      ended_at timestamptz,
      ended_reason text
    )`.execute(db);
  // Ended enrollments are history; only one active membership per (user, class).
  await sql`CREATE UNIQUE INDEX enrollments_active ON enrollments (user_id, class_id) WHERE ended_at IS NULL`.execute(db);
  // Also serves the keyset pages the reconcile step reads active enrollments in.
  await sql`CREATE INDEX enrollments_district_active ON enrollments (district_id, id) WHERE ended_at IS NULL`.execute(db);

  await sql`
    CREATE TABLE license_pools (
      id bigserial PRIMARY KEY,
      district_id text NOT NULL REFERENCES districts(id) ON DELETE CASCADE,
      product text NOT NULL,
      seats integer NOT NULL CHECK (seats >= 0),
      scope jsonb NOT NULL DEFAULT '{"schools":[],"grades":[],"courses":[]}',
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      UNIQUE (district_id, product)
    )`.execute(db);

  await sql`
    CREATE TABLE seat_assignments (
      id bigserial PRIMARY KEY,
      pool_id bigint NOT NULL REFERENCES license_pools(id) ON DELETE CASCADE,
      user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
      assigned_at timestamptz NOT NULL DEFAULT now(),
      released_at timestamptz,
      release_reason text,
      run_id uuid
    )`.execute(db);
  await sql`CREATE UNIQUE INDEX seat_assignments_held ON seat_assignments (pool_id, user_id) WHERE released_at IS NULL`.execute(db);

  await sql`
    CREATE TABLE waitlist (
      pool_id bigint NOT NULL REFERENCES license_pools(id) ON DELETE CASCADE,
      user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
      queued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      PRIMARY KEY (pool_id, user_id)
    )`.execute(db);

  await sql`
    CREATE TABLE sync_runs (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      district_id text NOT NULL REFERENCES districts(id) ON DELETE CASCADE,
      trigger text NOT NULL,
      status text NOT NULL CHECK (status IN ('QUEUED','RUNNING','SUCCEEDED','FAILED','HELD')),
      dry_run boolean NOT NULL DEFAULT false,
      full_snapshot boolean NOT NULL DEFAULT true,
      -- For a delta run: the start of the window it fetched.
      delta_since timestamptz,
      approved boolean NOT NULL DEFAULT false,
      phase text,
      progress jsonb,
      counts jsonb,
      guard jsonb,
      error text,
      attempts integer NOT NULL DEFAULT 0,
      created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      started_at timestamptz,
      -- Set at claim and on every progress report: a RUNNING run whose heartbeat
      -- stops is abandoned, and the next run of its district takes over.
      heartbeat_at timestamptz,
      staged_at timestamptz,
      staged_pages integer,
      finished_at timestamptz
    )`.execute(db);
  // Backstop for the worker's claim: never two runs of one district at once.
  await sql`CREATE UNIQUE INDEX sync_runs_one_running ON sync_runs (district_id) WHERE status = 'RUNNING'`.execute(db);
  await sql`CREATE INDEX sync_runs_district_created ON sync_runs (district_id, created_at DESC)`.execute(db);

  await sql`
    -- UNLOGGED: a stage is a hand-off between a run's steps, not a record. It
    -- survives a worker crash; a Postgres crash empties it, and the run's
    -- staged_pages count then tells the resuming worker to fetch again.
    CREATE UNLOGGED TABLE run_stage (
      run_id uuid NOT NULL REFERENCES sync_runs(id) ON DELETE CASCADE,
      seq integer NOT NULL,
      kind text NOT NULL,
      records integer NOT NULL,
      -- One provider page of canonical records as JSON text: staging is a
      -- hand-off between steps, never queried by field.
      data text NOT NULL,
      PRIMARY KEY (run_id, seq)
    )`.execute(db);
  // Pages are written once and read once: compressing them costs more than it saves.
  await sql`ALTER TABLE run_stage ALTER COLUMN data SET STORAGE EXTERNAL`.execute(db);

  await sql`
    CREATE TABLE audit_log (
      id bigserial PRIMARY KEY,
      district_id text NOT NULL,
      run_id uuid,
      entity text NOT NULL,
      entity_key text NOT NULL,
      action text NOT NULL,
      detail jsonb,
      at timestamptz NOT NULL DEFAULT now()
    )`.execute(db);
  await sql`CREATE INDEX audit_log_district_at ON audit_log (district_id, at)`.execute(db);
  await sql`CREATE INDEX audit_log_run ON audit_log (run_id)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['audit_log', 'run_stage', 'sync_runs', 'waitlist', 'seat_assignments', 'license_pools', 'enrollments', 'users', 'classes', 'courses', 'terms', 'schools', 'districts']) {
    await sql`DROP TABLE IF EXISTS ${sql.table(t)} CASCADE`.execute(db);
  }
}
