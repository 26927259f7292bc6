import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db } from '../../db/connection.js';

// Sessions: a random id in Postgres (hashed, so a database read gives no
// usable cookie), shared by every `serve` process; the cookie carries the id
// and an HMAC of it keyed by SESSION_SECRET, so a forged or altered cookie is
// rejected before any lookup.
export const SESSION_COOKIE = 'rostersync_session';
export const SESSION_TTL_SEC = 12 * 3600;

const hash = (s: string) => createHash('sha256').update(s).digest('base64url');

export class SessionStore {
  constructor(private readonly db: Db, private readonly secret: string) {}

  private sign(id: string): string {
    return createHmac('sha256', this.secret).update(id).digest('base64url');
  }

  async create(s: { userId: string; districtId: string; via: string }): Promise<string> {
    const id = randomBytes(32).toString('base64url');
    // Expired sessions are swept on the way, so the table stays small without a job.
    await this.db.deleteFrom('sso_sessions').where('expires_at', '<', new Date()).execute();
    await this.db.insertInto('sso_sessions').values({
      id_hash: hash(id), user_id: s.userId, district_id: s.districtId, via: s.via, expires_at: new Date(Date.now() + SESSION_TTL_SEC * 1000),
    }).execute();
    return `${id}.${this.sign(id)}`;
  }

  /** The session's id from a cookie value, when its signature holds. */
  verify(cookie: string | undefined): string | undefined {
    if (!cookie) return undefined;
    const [id, mac] = cookie.split('.');
    if (!id || !mac) return undefined;
    const expected = Buffer.from(this.sign(id));
    const given = Buffer.from(mac);
    return expected.length === given.length && timingSafeEqual(expected, given) ? id : undefined;
  }

  async find(cookie: string | undefined): Promise<{ idHash: string; userId: string; districtId: string; via: string } | undefined> {
    const id = this.verify(cookie);
    if (!id) return undefined;
    const row = await this.db.selectFrom('sso_sessions').selectAll().where('id_hash', '=', hash(id)).where('expires_at', '>', new Date()).executeTakeFirst();
    return row && { idHash: row.id_hash, userId: row.user_id, districtId: row.district_id, via: row.via };
  }

  async destroy(cookie: string | undefined): Promise<void> {
    const id = this.verify(cookie);
    if (id) await this.db.deleteFrom('sso_sessions').where('id_hash', '=', hash(id)).execute();
  }

  async destroyByHash(idHash: string): Promise<void> {
    await this.db.deleteFrom('sso_sessions').where('id_hash', '=', idHash).execute();
  }
}
