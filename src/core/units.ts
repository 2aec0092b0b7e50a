// Units people write in options and configuration files, parsed strictly: one
// spelling per value. `Number()` would take "0x10", "1e2", " 4", "" (0) and
// "4.0", and a typo must be an error, not a different number.

const WHOLE_RE = /^[0-9]+$/;
const DECIMAL_RE = /^[0-9]+(?:\.[0-9]+)?$/;
const SIZE_RE = /^([0-9]+(?:\.[0-9]+)?) ?(b|k|kb|kib|m|mb|mib|g|gb|gib|t|tb|tib)?$/i;
const DURATION_RE = /^([0-9]+)(ms|s|m|h|d)?$/i;
const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A whole number written with ASCII digits only: "16", "0". Not "0x10",
 * "1e2", " 4", "4.0", "+4", "-1" or "". Undefined when not one (or beyond 2^53).
 */
export function parseWholeNumber(text: string): number | undefined {
  if (!WHOLE_RE.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** A non-negative decimal number: "2", "0.5". Not "1e2", ".5", "5.", " 2" or "". */
export function parseDecimal(text: string): number | undefined {
  if (!DECIMAL_RE.test(text)) return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

/** Parses "16MiB", "64M", "1.5GiB", "4096", "16 MiB" (binary units: K = 1024); nothing around it. */
export function parseSize(text: string): number | undefined {
  const m = SIZE_RE.exec(text);
  if (!m) return undefined;
  const unit = (m[2] ?? 'b').toLowerCase()[0] ?? 'b';
  const mult = { b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[unit] ?? 1;
  // A size is a whole number of bytes: "0.5b" or "1.00000000001b" is not one, "1.5KiB" is.
  const v = Number(m[1]) * mult;
  return Number.isSafeInteger(v) ? v : undefined;
}

/** Parses a duration in milliseconds: "24h", "30m", "2d", "90s", "500ms", "0" (a bare number is seconds). */
export function parseDuration(text: string): number | undefined {
  const m = DURATION_RE.exec(text);
  if (!m) return undefined;
  const n = parseWholeNumber(m[1] ?? '');
  if (n === undefined) return undefined;
  const ms = n * (UNIT_MS[(m[2] ?? 's').toLowerCase()] ?? 1000);
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/** The longest delay a Node.js timer takes (2^31 − 1 ms, about 24.8 days); a longer one fires at once. */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * Undefined when `ms` can be a timer's delay (a number from 0 to MAX_TIMER_MS),
 * else the reason it cannot: Node.js would fire a longer timer at once, so a
 * huge drain timeout would abort at once and a huge request timeout would
 * time every request out — the opposite of what was asked.
 */
export function timerProblem(ms: number): string | undefined {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) return `expected a number of milliseconds of 0 or more, got ${String(ms)}`;
  if (ms > MAX_TIMER_MS) return `at most ${Math.floor(MAX_TIMER_MS / 1000)} seconds (about 24 days), got ${Math.round(ms / 1000)} s`;
  return undefined;
}
