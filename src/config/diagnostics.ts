// Problems found in a configuration file, and how they are shown:
//
//   holdfast.yaml:12:5: jobs.nightly.rules[1].to[0]: unknown destination "azur" (known: offsite, local)
//
// Validation collects every problem instead of stopping at the first, so one
// run of `holdfast config check` shows them all. Errors end the command with
// HOLDFAST_E_CONFIG (a ConfigError carrying the list); warnings are returned
// beside the loaded configuration, for the caller to print.

import { HoldfastError } from '../core/errors.js';
import type { Position } from './document.js';

export interface ConfigIssue {
  readonly severity: 'error' | 'warning';
  /** Where in the file; undefined when the problem is not in one place (no file found, an unreadable file). */
  readonly pos: Position | undefined;
  /** The field, e.g. `jobs.nightly.rules[1].to[0]`; "" for the file as a whole. */
  readonly path: string;
  readonly message: string;
}

/** `file:line:col: path: message` (the parts that are known); the severity is the caller's to show. */
export function formatIssue(file: string, issue: ConfigIssue): string {
  const where = issue.pos ? `${file}:${issue.pos.line}:${issue.pos.col}` : file;
  return `${where}: ${issue.path ? `${issue.path}: ` : ''}${issue.message}`;
}

/** Issues in file order (position, then field path). */
export function sortIssues(issues: readonly ConfigIssue[]): ConfigIssue[] {
  // Problems without a place (about the whole file) come last.
  const line = (i: ConfigIssue): number => i.pos?.line ?? Infinity;
  return [...issues].sort((a, b) => line(a) - line(b) || (a.pos?.col ?? 0) - (b.pos?.col ?? 0) || a.path.localeCompare(b.path));
}

/** HOLDFAST_E_CONFIG with every error found; `issues` keeps them apart for programs. */
export class ConfigError extends HoldfastError {
  readonly file: string;
  readonly issues: readonly ConfigIssue[];

  constructor(file: string, issues: readonly ConfigIssue[]) {
    const sorted = sortIssues(issues);
    const lines = sorted.map((i) => formatIssue(file, i));
    const detail = lines.length === 1 ? (lines[0] ?? '') : `${lines.length} problems in ${file}:\n${lines.map((l) => `  ${l}`).join('\n')}`;
    super('HOLDFAST_E_CONFIG', { detail });
    this.name = 'ConfigError';
    this.file = file;
    this.issues = sorted;
  }
}

/** Collects issues while a file is validated. */
export class IssueList {
  readonly issues: ConfigIssue[] = [];

  error(pos: Position | undefined, path: string, message: string): void {
    this.issues.push({ severity: 'error', pos, path, message });
  }

  warning(pos: Position | undefined, path: string, message: string): void {
    this.issues.push({ severity: 'warning', pos, path, message });
  }

  get errors(): ConfigIssue[] {
    return this.issues.filter((i) => i.severity === 'error');
  }

  get warnings(): ConfigIssue[] {
    return sortIssues(this.issues.filter((i) => i.severity === 'warning'));
  }
}

/** ` (did you mean "x"?)` when `word` is close to one of `known`, else "". */
export function didYouMean(word: string, known: readonly string[]): string {
  const norm = (s: string): string => s.toLowerCase().replace(/[-_\s]/g, '');
  let best: string | undefined;
  let bestScore = Infinity;
  for (const k of known) {
    // Same word in another case or spelling (max-delete, max_delete, maxdelete → maxDelete).
    const score = norm(k) === norm(word) ? 0 : editDistance(word.toLowerCase(), k.toLowerCase());
    if (score < bestScore) {
      bestScore = score;
      best = k;
    }
  }
  if (best === undefined) return '';
  const limit = Math.max(1, Math.floor(Math.min(word.length, best.length) / 3));
  return bestScore <= limit ? ` (did you mean "${best}"?)` : '';
}

/** Levenshtein distance, with a transposition counting as one edit. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      const row = d[i]!;
      const prev = d[i - 1]!;
      let v = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      row[j] = v;
    }
  }
  return d[a.length]![b.length]!;
}
