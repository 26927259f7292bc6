/**
 * One copy of each repeated string. A district's sourcedIds recur across many
 * records (a student id in every enrollment of theirs, in the snapshot and in
 * the local state), and parsing gives each occurrence its own string; sharing
 * them cuts the reconcile step's memory by a large fraction.
 */
export class Interner {
  private readonly seen = new Map<string, string>();

  intern = (s: string): string => {
    const known = this.seen.get(s);
    if (known !== undefined) return known;
    this.seen.set(s, s);
    return s;
  };
}
