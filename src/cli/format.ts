// Formatting for people: sizes, durations, rates, and keys shown safely
// (a key may contain newlines or control characters; we never print them raw).

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  // Under 1 KiB a byte count is whole (a rate may not be: 0.97 B/s is shown as 1 B).
  return u === 0 ? `${Math.round(n)} B` : `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)} ${UNITS[u]}`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  const rest = Math.round(s % 60);
  if (m < 60) return `${m}m${String(rest).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** Shows a key on one line: control characters escaped as in JSON, quoted only when needed. */
export function displayKey(key: string): string {
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u001f\u007f-\u009f"]/.test(key) || /^\s|\s$/.test(key) ? JSON.stringify(key) : key;
}

export { parseSize } from '../core/units.js';
