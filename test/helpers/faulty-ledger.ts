// Fault injection for the ledger: a wrapper that forwards every call to a real
// ledger, except the calls a test tells it to fail. Not a mock: the real
// SQLite ledger does all the work it is allowed to do.

import type { Ledger } from '../../src/ledger/ledger.js';

export type LedgerMethod = keyof Ledger;

export interface FaultRule {
  readonly method: LedgerMethod;
  /** Decide per call (arguments given); default: always fail. */
  readonly when?: (args: unknown[], callIndex: number) => boolean;
  /** The error to throw (default: an SQLITE_IOERR-like disk I/O error). */
  readonly error?: () => Error;
}

export interface FaultyLedger extends Ledger {
  /** How many calls each method received, and how many were failed on purpose. */
  readonly calls: Map<string, number>;
  readonly failures: Map<string, number>;
  setRules(rules: readonly FaultRule[]): void;
}

export function faultyLedger(inner: Ledger, initial: readonly FaultRule[] = []): FaultyLedger {
  let rules = [...initial];
  const calls = new Map<string, number>();
  const failures = new Map<string, number>();
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'calls') return calls;
      if (prop === 'failures') return failures;
      if (prop === 'setRules') return (r: readonly FaultRule[]) => (rules = [...r]);
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      const name = String(prop);
      return (...args: unknown[]) => {
        const n = calls.get(name) ?? 0;
        calls.set(name, n + 1);
        const rule = rules.find((r) => r.method === name && (r.when ? r.when(args, n) : true));
        if (rule) {
          failures.set(name, (failures.get(name) ?? 0) + 1);
          const e = rule.error ? rule.error() : Object.assign(new Error('disk I/O error (injected)'), { code: 'SQLITE_IOERR' });
          // Async methods fail asynchronously, as a real driver would.
          return Promise.reject(e);
        }
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  }) as FaultyLedger;
}
