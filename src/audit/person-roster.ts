import { z } from 'zod';

/**
 * The compact audit format (issue #11): one row per person per run holds all of
 * that person's enrollment and seat changes, instead of one row per change.
 * Row: entity 'person', entity_key = the user's sourcedId, action 'roster',
 * detail = PersonRoster (only the non-empty parts).
 */
export const PERSON_ENTITY = 'person';
export const PERSON_ACTION = 'roster';

const Ended = z.object({ class: z.string(), reason: z.string() });
const Released = z.object({ product: z.string(), reason: z.string() });

/** Parses what earlier runs wrote: every part optional, unknown keys ignored. */
export const PersonRoster = z.object({
  enrollments: z.object({ added: z.array(z.string()).optional(), ended: z.array(Ended).optional() }).optional(),
  seats: z.object({
    assigned: z.array(z.string()).optional(),
    released: z.array(Released).optional(),
    waitlisted: z.array(z.string()).optional(),
    unwaitlisted: z.array(z.string()).optional(),
  }).optional(),
});
export type PersonRoster = z.infer<typeof PersonRoster>;

interface Draft {
  added: string[];
  ended: z.infer<typeof Ended>[];
  assigned: string[];
  released: z.infer<typeof Released>[];
  waitlisted: string[];
  unwaitlisted: string[];
}

/** Collects a run's enrollment and seat changes person by person. */
export class PersonRosterBuilder {
  private readonly people = new Map<string, Draft>();

  private of(sourcedId: string): Draft {
    let d = this.people.get(sourcedId);
    if (!d) {
      d = { added: [], ended: [], assigned: [], released: [], waitlisted: [], unwaitlisted: [] };
      this.people.set(sourcedId, d);
    }
    return d;
  }

  enrollmentAdded(user: string, cls: string): void { this.of(user).added.push(cls); }
  enrollmentEnded(user: string, cls: string, reason: string): void { this.of(user).ended.push({ class: cls, reason }); }
  seatAssigned(user: string, product: string): void { this.of(user).assigned.push(product); }
  seatReleased(user: string, product: string, reason: string): void { this.of(user).released.push({ product, reason }); }
  waitlisted(user: string, product: string): void { this.of(user).waitlisted.push(product); }
  unwaitlisted(user: string, product: string): void { this.of(user).unwaitlisted.push(product); }

  /** One row per person, in first-touched order, with only the parts that changed. */
  rows(): { key: string; detail: PersonRoster }[] {
    return [...this.people].map(([key, d]) => {
      const some = <T>(items: T[]) => (items.length ? items : undefined);
      const enrollments = d.added.length || d.ended.length ? { added: some(d.added), ended: some(d.ended) } : undefined;
      const seats = d.assigned.length || d.released.length || d.waitlisted.length || d.unwaitlisted.length
        ? { assigned: some(d.assigned), released: some(d.released), waitlisted: some(d.waitlisted), unwaitlisted: some(d.unwaitlisted) }
        : undefined;
      // JSON.stringify drops the undefined parts, so the stored detail holds only what changed.
      return { key, detail: { enrollments, seats } };
    });
  }
}
