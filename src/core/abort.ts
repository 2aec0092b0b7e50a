// One AbortSignal per request, linked to a shared one through a single listener.
//
// An SDK adds its own 'abort' listeners to the signal it is given (the AWS SDK:
// one per retry race and one per HTTP request), and removes them when the
// request ends. Give many concurrent requests the same signal and it carries a
// listener per request at once: Node warns past 10
// (MaxListenersExceededWarning), and every abort walks them all. Instead, each
// request gets its own signal (`requestSignal`); the shared signal carries one
// listener per shared signal, however many requests hang off it, and that
// listener is removed when the last request ends.

interface Fanout {
  readonly children: Set<AbortController>;
  readonly onAbort: () => void;
}

const fanouts = new WeakMap<AbortSignal, Fanout>();

export interface RequestSignal {
  /** Aborted when the shared signal is (with its reason), or by `abort()`. */
  readonly signal: AbortSignal;
  /** Aborts this request only. */
  abort(reason?: unknown): void;
  /** The request is over: unlink it (call in `finally`). */
  done(): void;
}

/** A fresh signal for one request, aborted when `shared` is. Call `done()` when the request ends. */
export function requestSignal(shared: AbortSignal | undefined): RequestSignal {
  const controller = new AbortController();
  if (shared === undefined) return { signal: controller.signal, abort: (r) => controller.abort(r), done: () => undefined };
  if (shared.aborted) {
    controller.abort(shared.reason);
    return { signal: controller.signal, abort: (r) => controller.abort(r), done: () => undefined };
  }
  let fanout = fanouts.get(shared);
  if (fanout === undefined) {
    const children = new Set<AbortController>();
    const onAbort = (): void => {
      fanouts.delete(shared);
      for (const child of [...children]) child.abort(shared.reason);
      children.clear();
    };
    fanout = { children, onAbort };
    fanouts.set(shared, fanout);
    shared.addEventListener('abort', onAbort, { once: true });
  }
  const f = fanout;
  f.children.add(controller);
  let linked = true;
  return {
    signal: controller.signal,
    abort: (reason) => controller.abort(reason),
    done: () => {
      if (!linked) return;
      linked = false;
      f.children.delete(controller);
      if (f.children.size === 0 && fanouts.get(shared) === f) {
        fanouts.delete(shared);
        shared.removeEventListener('abort', f.onAbort);
      }
    },
  };
}

/** Runs `fn` with its own request signal linked to `shared`, unlinked when it settles. */
export async function withRequestSignal<T>(shared: AbortSignal | undefined, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const r = requestSignal(shared);
  try {
    return await fn(r.signal);
  } finally {
    r.done();
  }
}
