import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

// Secrets (provider tokens, client and consumer secrets, SSO client secrets)
// are stored sealed with AES-256-GCM: `v1:<key id>:<iv>:<tag>:<ciphertext>`,
// base64url parts. The key id (first 8 hex of the key's SHA-256) says which key
// sealed a value, so a rotation can open old values with the previous key and
// re-seal them with the new one.

const PREFIX = 'v1';

export class SecretsKeyError extends Error {}

interface Key { id: string; bytes: Buffer }

function parseKey(raw: string, name: string): Key {
  const bytes = Buffer.from(raw.trim(), 'base64');
  if (bytes.length !== 32) throw new SecretsKeyError(`${name} must be 32 random bytes in base64 (openssl rand -base64 32); it decodes to ${bytes.length} bytes`);
  return { id: createHash('sha256').update(bytes).digest('hex').slice(0, 8), bytes };
}

export function isSealed(value: string): boolean {
  return value.startsWith(`${PREFIX}:`) && value.split(':').length === 5;
}

export class SecretBox {
  private readonly current: Key | undefined;
  private readonly keys = new Map<string, Key>();

  constructor(opts: { key?: string; previousKey?: string }) {
    if (opts.key) {
      this.current = parseKey(opts.key, 'SECRETS_KEY');
      this.keys.set(this.current.id, this.current);
    }
    if (opts.previousKey) {
      const previous = parseKey(opts.previousKey, 'SECRETS_KEY_PREVIOUS');
      this.keys.set(previous.id, previous);
    }
  }

  static fromConfig(config: { SECRETS_KEY?: string; SECRETS_KEY_PREVIOUS?: string }): SecretBox {
    return new SecretBox({ key: config.SECRETS_KEY, previousKey: config.SECRETS_KEY_PREVIOUS });
  }

  /** The id of the key new values are sealed with. */
  get keyId(): string | undefined {
    return this.current?.id;
  }

  seal(plain: string): string {
    if (!this.current) throw new SecretsKeyError('SECRETS_KEY is not set: secrets are stored encrypted; set it to 32 random bytes in base64 (openssl rand -base64 32)');
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.current.bytes, iv);
    const data = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return [PREFIX, this.current.id, iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), data.toString('base64url')].join(':');
  }

  open(sealed: string): string {
    if (!isSealed(sealed)) throw new SecretsKeyError('stored secret is not sealed (written before encryption at rest?): run `rostersync rotate-secrets`');
    const [, keyId, iv, tag, data] = sealed.split(':') as [string, string, string, string, string];
    const key = this.keys.get(keyId);
    if (!key) {
      throw new SecretsKeyError(this.keys.size === 0
        ? 'SECRETS_KEY is not set: stored secrets cannot be opened'
        : `a stored secret was sealed with key ${keyId}, which is neither SECRETS_KEY nor SECRETS_KEY_PREVIOUS`);
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', key.bytes, Buffer.from(iv, 'base64url'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(data, 'base64url')), decipher.final()]).toString('utf8');
    } catch {
      throw new SecretsKeyError(`a stored secret sealed with key ${keyId} failed its integrity check (tampered or corrupted)`);
    }
  }

  /** Whether a sealed value was sealed with an older key than the current one. */
  needsReseal(sealed: string): boolean {
    return !isSealed(sealed) || sealed.split(':')[1] !== this.current?.id;
  }
}
