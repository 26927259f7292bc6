export interface Hop { url: string; status: number; location: string | null; body: string; setCookies: string[] }

/**
 * A browser enough for sign-in flows: follows 30x by hand, keeps cookies per
 * origin (loopback servers differ only by port, and real browsers would see
 * them as different sites; Secure cookies are sent over loopback http, as
 * browsers do for localhost), posts forms, and can stop before a URL to replay
 * it later.
 */
export class Browser {
  private readonly jars = new Map<string, Map<string, string>>();

  cookie(origin: string, name: string): string | undefined {
    return this.jars.get(origin)?.get(name);
  }

  setCookie(origin: string, name: string, value: string | undefined): void {
    const jar = this.jars.get(origin) ?? new Map<string, string>();
    if (value === undefined) jar.delete(name);
    else jar.set(name, value);
    this.jars.set(origin, jar);
  }

  cookies(origin: string): Map<string, string> {
    return new Map(this.jars.get(origin) ?? []);
  }

  restoreCookies(origin: string, jar: Map<string, string>): void {
    this.jars.set(origin, new Map(jar));
  }

  async request(url: string, init: { method?: string; form?: Record<string, string> } = {}): Promise<Hop> {
    const origin = new URL(url).origin;
    const jar = this.jars.get(origin);
    const headers: Record<string, string> = {};
    if (jar?.size) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    if (init.form) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await fetch(url, { method: init.method ?? 'GET', redirect: 'manual', headers, body: init.form ? new URLSearchParams(init.form).toString() : undefined });
    const setCookies = res.headers.getSetCookie();
    for (const c of setCookies) {
      const [pair, ...attrs] = c.split(';');
      const i = pair!.indexOf('=');
      const name = pair!.slice(0, i).trim();
      const value = pair!.slice(i + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a) || /^\s*expires=thu, 01 jan 1970/i.test(a));
      this.setCookie(origin, name, expired || value === '' ? undefined : value);
    }
    const location = res.headers.get('location');
    return { url, status: res.status, location: location && new URL(location, url).href, body: await res.text(), setCookies };
  }

  /** Follows redirects from `url`; stops before a URL `stopBefore` accepts (returned in `stoppedAt`). */
  async follow(url: string, opts: { stopBefore?: (u: URL) => boolean } = {}): Promise<{ hops: Hop[]; last: Hop; stoppedAt?: string }> {
    const hops: Hop[] = [];
    let next: string | null = url;
    for (let i = 0; i < 20 && next; i++) {
      if (i > 0 && opts.stopBefore?.(new URL(next))) return { hops, last: hops[hops.length - 1]!, stoppedAt: next };
      const hop = await this.request(next);
      hops.push(hop);
      next = hop.status >= 300 && hop.status < 400 ? hop.location : null;
    }
    return { hops, last: hops[hops.length - 1]! };
  }
}
