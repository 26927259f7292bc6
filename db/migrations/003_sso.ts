import { sql, type Kysely } from 'kysely';

// Issue #9: OpenID Connect sign-in (Clever, ClassLink).
export async function up(db: Kysely<unknown>): Promise<void> {
  // One provider app (issuer + client id) is shared by every district that signs in through it.
  await sql`
    CREATE TABLE sso_apps (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      provider text NOT NULL CHECK (provider IN ('clever', 'classlink')),
      issuer text NOT NULL,
      client_id text NOT NULL,
      client_secret_sealed text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      UNIQUE (provider, issuer, client_id)
    )`.execute(db);
  // A district's tenant at a provider; a (provider, tenant) belongs to one district.
  await sql`
    CREATE TABLE sso_tenants (
      district_id text NOT NULL REFERENCES districts(id) ON DELETE CASCADE,
      provider text NOT NULL,
      app_id uuid NOT NULL REFERENCES sso_apps(id),
      tenant text NOT NULL,
      api_url text NOT NULL,
      jit boolean NOT NULL DEFAULT false,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (district_id, provider),
      UNIQUE (provider, tenant)
    )`.execute(db);
  // Sign-ins started here: single use (deleted on use), bound to the browser by a cookie's hash.
  await sql`
    CREATE TABLE sso_states (
      state_hash text PRIMARY KEY,
      browser_hash text NOT NULL,
      provider text NOT NULL,
      district_id text NOT NULL,
      nonce text NOT NULL,
      code_verifier text NOT NULL,
      expires_at timestamptz NOT NULL
    )`.execute(db);
  await sql`CREATE INDEX sso_states_expires ON sso_states (expires_at)`.execute(db);
  // Sessions live in Postgres so every `serve` process behind a load balancer sees them.
  await sql`
    CREATE TABLE sso_sessions (
      id_hash text PRIMARY KEY,
      user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
      district_id text NOT NULL,
      via text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      expires_at timestamptz NOT NULL
    )`.execute(db);
  await sql`CREATE INDEX sso_sessions_user ON sso_sessions (user_id)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['sso_sessions', 'sso_states', 'sso_tenants', 'sso_apps']) {
    await sql`DROP TABLE IF EXISTS ${sql.table(t)} CASCADE`.execute(db);
  }
}
