import { readFormPost, type FormPost } from '../../fixtures/lti/platform.js';

export interface Hop { url: string; status: number; location: string | null; body: string; setCookies: string[] }

/**
 * A browser enough for LTI launches: keeps cookies per origin (sending Secure
 * ones over loopback http, as browsers do for localhost), follows redirects by
 * hand, and submits the platform's auto-posting form. It can stop before the
 * form post so a test can tamper with it or replay it.
 */
export class LtiBrowser {
  private readonly jars = new Map<string, Map<string, string>>();

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
      const next = this.jars.get(origin) ?? new Map<string, string>();
      if (expired || value === '') next.delete(name);
      else next.set(name, value);
      this.jars.set(origin, next);
    }
    const location = res.headers.get('location');
    return { url, status: res.status, location: location && new URL(location, url).href, body: await res.text(), setCookies };
  }

  /** From the LMS's login initiation to the platform's form (not yet posted); `hops` ends where the flow stopped. */
  async toForm(loginUrl: string): Promise<{ hops: Hop[]; form?: FormPost }> {
    const hops: Hop[] = [];
    let next: string | null = loginUrl;
    for (let i = 0; i < 10 && next; i++) {
      const hop = await this.request(next);
      hops.push(hop);
      if (hop.status === 200 && /<form/i.test(hop.body)) return { hops, form: readFormPost(hop.body) };
      next = hop.status >= 300 && hop.status < 400 ? hop.location : null;
    }
    return { hops };
  }

  post(form: FormPost): Promise<Hop> {
    return this.request(form.action, { method: 'POST', form: form.fields });
  }

  /** The whole launch: login initiation → auth request → form_post; the last hop is the tool's answer to the post. */
  async launch(loginUrl: string): Promise<{ hops: Hop[]; last: Hop; form?: FormPost }> {
    const { hops, form } = await this.toForm(loginUrl);
    if (!form) return { hops, last: hops[hops.length - 1]! };
    const last = await this.post(form);
    return { hops: [...hops, last], last, form };
  }
}
