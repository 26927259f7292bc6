import { readFormPost, type FormPost } from '../../fixtures/lti/platform.js';
import { Browser, type Hop } from './browser.js';

export type { Hop };

/**
 * The shared browser, plus what an LTI launch needs: submitting the
 * platform's auto-posting form. It can stop before the form post so a test
 * can tamper with it or replay it.
 */
export class LtiBrowser extends Browser {
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
