// A job's rules, compiled: which destinations each source file goes to.
//
// The first rule that matches a file decides; a file no rule matches goes
// nowhere. A rule matches when all its conditions hold: `glob` (read exactly
// like a list of --exclude patterns: the rule matches the files that list
// would leave out), `type` (a file of any of the named types, each type being
// such a glob list), `minSize` / `maxSize` (inclusive, in bytes). A rule with
// no condition matches every file.

import { excludesPath, compileExcludes, type Matcher } from '../scan/ignore.js';
import type { FileFacts } from '../sync/run.js';
import type { JobConfig, RuleConfig } from './schema.js';

export interface CompiledRules {
  /** The rule that decides where `file` goes, or undefined (it goes nowhere). */
  ruleFor(file: FileFacts): RuleConfig | undefined;
  /** The destinations `file` goes to, in the job's order. */
  destinationsOf(file: FileFacts): readonly string[];
  /** The selector for one destination (DestinationSpec.select). */
  select(destination: string): (file: FileFacts) => boolean;
}

/** Whether a glob list matches `key`: as an exclude list would, ancestors included ("logs" matches "logs/a.txt"). */
function globTest(globs: readonly string[]): (key: string) => boolean {
  const m: Matcher = compileExcludes(globs);
  return (key) => excludesPath(m, key);
}

function compileRule(rule: RuleConfig, types: ReadonlyMap<string, readonly string[]>): (file: FileFacts) => boolean {
  const tests: ((file: FileFacts) => boolean)[] = [];
  if (rule.glob !== undefined) {
    const t = globTest(rule.glob);
    tests.push((f) => t(f.key));
  }
  if (rule.type !== undefined) {
    const ts = rule.type.map((name) => globTest(types.get(name) ?? []));
    tests.push((f) => ts.some((t) => t(f.key)));
  }
  const { minSize, maxSize } = rule;
  if (minSize !== undefined) tests.push((f) => f.size >= minSize);
  if (maxSize !== undefined) tests.push((f) => f.size <= maxSize);
  return (f) => tests.every((t) => t(f));
}

export function compileRules(job: Pick<JobConfig, 'to' | 'rules'>, types: ReadonlyMap<string, readonly string[]>): CompiledRules {
  const rules = job.rules;
  if (rules === undefined) {
    const all = job.to;
    return { ruleFor: () => undefined, destinationsOf: () => all, select: () => () => true };
  }
  const compiled = rules.map((r) => ({ rule: r, test: compileRule(r, types) }));
  // Each destination's selector asks the same question of the same file: remember the last answer.
  let lastFile: FileFacts | undefined;
  let lastRule: RuleConfig | undefined;
  const ruleFor = (file: FileFacts): RuleConfig | undefined => {
    if (lastFile !== undefined && lastFile.key === file.key && lastFile.size === file.size && lastFile.mtimeMs === file.mtimeMs) return lastRule;
    lastRule = compiled.find((c) => c.test(file))?.rule;
    lastFile = file;
    return lastRule;
  };
  return {
    ruleFor,
    destinationsOf: (file) => {
      const to = ruleFor(file)?.to ?? [];
      return job.to.filter((d) => to.includes(d));
    },
    select: (destination) => (file) => ruleFor(file)?.to.includes(destination) ?? false,
  };
}

/** One rule in words, for `holdfast config check`: "*.sql.gz files of type db, at most 100 MiB → offsite, azure". */
export function describeRule(rule: RuleConfig, formatSize: (n: number) => string): string {
  const parts: string[] = [];
  if (rule.type !== undefined) parts.push(`of type ${rule.type.join(' or ')}`);
  if (rule.glob !== undefined) parts.push(`matching ${rule.glob.map((g) => JSON.stringify(g)).join(', ')}`);
  if (rule.minSize !== undefined) parts.push(`at least ${formatSize(rule.minSize)}`);
  if (rule.maxSize !== undefined) parts.push(`at most ${formatSize(rule.maxSize)}`);
  const what = parts.length === 0 ? (rule.index === 0 ? 'every file' : 'every other file') : `files ${parts.join(', ')}`;
  return `${what} → ${rule.to.length === 0 ? 'nowhere' : rule.to.join(', ')}`;
}
