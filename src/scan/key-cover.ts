// A set of keys, each covering itself and everything below it. The planner
// fills one with what the scan could not vouch for (an entry it could not
// read, a symlink it did not follow) so that the copies of those files are
// never taken for "gone from the source" (DESIGN §2 promise 5).

export class KeyCover {
  readonly #keys = new Set<string>();

  /** Covers `key` and every key below it; "a/" (a directory's prefix) covers "a/…". */
  add(key: string): void {
    this.#keys.add(key.endsWith('/') ? key.slice(0, -1) : key);
  }

  get size(): number {
    return this.#keys.size;
  }

  /** True when `key` or one of its ancestor directories was added. O(depth of the key). */
  covers(key: string): boolean {
    if (this.#keys.size === 0) return false;
    if (this.#keys.has(key)) return true;
    for (let i = key.indexOf('/'); i !== -1; i = key.indexOf('/', i + 1)) {
      if (this.#keys.has(key.slice(0, i))) return true;
    }
    return false;
  }
}
