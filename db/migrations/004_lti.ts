import { sql, type Kysely } from 'kysely';

// Issue #10: LTI 1.3 launches (Canvas, Schoology) through ltijs. ltijs keeps its
// own tables (platforms, keys, nonces…, created by ltijs-sequelize in `public`
// under sequelize's plural names: idtokens, contexttokens, platforms,
// platformStatuses, publickeys, privatekeys, accesstokens, nonces, states,
// SequelizeMeta); these tables are ours: which district a launch belongs to,
// the replay guard, and what each accepted launch said.
export async function up(db: Kysely<unknown>): Promise<void> {
  // One LMS registration (issuer + client id = a Canvas developer key or a Schoology app) serves many districts.
  await sql`
    CREATE TABLE lti_registrations (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      platform text NOT NULL CHECK (platform IN ('canvas', 'schoology')),
      issuer text NOT NULL,
      client_id text NOT NULL,
      auth_url text NOT NULL,
      token_url text NOT NULL,
      jwks_url text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      UNIQUE (issuer, client_id)
    )`.execute(db);
  // An (issuer, client id, deployment id) belongs to one district: the primary key says so.
  await sql`
    CREATE TABLE lti_deployments (
      registration_id uuid NOT NULL REFERENCES lti_registrations(id) ON DELETE CASCADE,
      deployment_id text NOT NULL,
      district_id text NOT NULL REFERENCES districts(id) ON DELETE CASCADE,
      match text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (registration_id, deployment_id)
    )`.execute(db);
  await sql`CREATE INDEX lti_deployments_district ON lti_deployments (district_id)`.execute(db);
  // Nonces of accepted id_tokens, kept until the token could no longer pass the age
  // check: ltijs forgets its own after 10 s, shorter than our token age limit.
  await sql`
    CREATE TABLE lti_nonces (
      issuer text NOT NULL,
      nonce text NOT NULL,
      expires_at timestamptz NOT NULL,
      PRIMARY KEY (issuer, nonce)
    )`.execute(db);
  await sql`CREATE INDEX lti_nonces_expires ON lti_nonces (expires_at)`.execute(db);
  // What each accepted launch said: the course/context and roles (for a later
  // class-membership check) and the NRPS endpoint for `lti roster`.
  await sql`
    CREATE TABLE lti_launches (
      id bigserial PRIMARY KEY,
      district_id text NOT NULL REFERENCES districts(id) ON DELETE CASCADE,
      user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
      registration_id uuid NOT NULL REFERENCES lti_registrations(id) ON DELETE CASCADE,
      deployment_id text NOT NULL,
      subject text NOT NULL,
      context_id text,
      context_title text,
      resource_link_id text,
      roles text[] NOT NULL DEFAULT '{}',
      nrps_url text,
      launched_at timestamptz NOT NULL DEFAULT now()
    )`.execute(db);
  await sql`CREATE INDEX lti_launches_context ON lti_launches (district_id, context_id, launched_at DESC)`.execute(db);
  await sql`CREATE INDEX lti_launches_user ON lti_launches (user_id)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['lti_launches', 'lti_nonces', 'lti_deployments', 'lti_registrations']) {
    await sql`DROP TABLE IF EXISTS ${sql.table(t)} CASCADE`.execute(db);
  }
}
