// Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time by origin
// (package, project directory, node internals), the top functions by self
// time, and by "inclusive" time for frames in a chosen file pattern.
//
//   node dist/bench/cpuprofile-top.js <file.cpuprofile> [--top 25] [--match src/]
//
// Self time = samples whose leaf frame is the function. Inclusive time (with
// --match) = samples with the function anywhere on the stack, counted once.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function label(f: CallFrame): string {
  const file = f.url.replace(/^file:\/\//, '').replace(/^.*\/(node_modules|dist)\//, '$1/');
  return `${f.functionName || '(anonymous)'} ${file ? `${file}:${f.lineNumber + 1}` : ''}`.trim();
}

/** Where a frame's code comes from: a package, the project, node's own JS, or a native/VM pseudo-frame. */
function group(f: CallFrame): string {
  if (f.url === '') return f.functionName.startsWith('(') ? f.functionName : 'native (fs/crypto/… bindings)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(f.url);
  if (pkg) return pkg[1]!;
  if (f.url.startsWith('node:')) return 'node internals';
  const own = /\/dist\/(src\/[^/]+)\//.exec(f.url);
  return own ? own[1]! : f.url;
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string', default: '25' }, match: { type: 'string' } },
  });
  const file = positionals[0];
  if (!file) {
    console.error('usage: cpuprofile-top <file.cpuprofile> [--top N] [--match substring]');
    process.exit(1);
  }
  const top = Number(values.top);
  const prof = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of prof.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const selfUs = new Map<string, number>();
  const groupUs = new Map<string, number>();
  const inclUs = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = prof.timeDeltas[i] ?? 0;
    total += dt;
    const leaf = byId.get(prof.samples[i]!)!;
    const l = label(leaf.callFrame);
    selfUs.set(l, (selfUs.get(l) ?? 0) + dt);
    const g = group(leaf.callFrame);
    groupUs.set(g, (groupUs.get(g) ?? 0) + dt);
    if (values.match) {
      const seen = new Set<string>();
      for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
        const f = byId.get(id)!.callFrame;
        if (!f.url.includes(values.match)) continue;
        const fl = label(f);
        if (seen.has(fl)) continue;
        seen.add(fl);
        inclUs.set(fl, (inclUs.get(fl) ?? 0) + dt);
      }
    }
  }
  const ms = (us: number): string => (us / 1000).toFixed(0).padStart(7);
  const pct = (us: number): string => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
  console.log(`profile: ${file}\nsampled: ${(total / 1000).toFixed(0)} ms (wall ${((prof.endTime - prof.startTime) / 1000).toFixed(0)} ms)`);
  console.log('\n-- self time by origin --');
  for (const [g, us] of [...groupUs].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`${ms(us)} ms ${pct(us)}  ${g}`);
  console.log('\n-- top self time --');
  for (const [l, us] of [...selfUs].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${ms(us)} ms ${pct(us)}  ${l}`);
  if (values.match) {
    console.log(`\n-- top inclusive time, frames matching "${values.match}" --`);
    for (const [l, us] of [...inclUs].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${ms(us)} ms ${pct(us)}  ${l}`);
  }
}

main();
