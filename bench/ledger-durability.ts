// What durability costs: the SQLite ledger with synchronous=FULL (the default:
// a committed transaction survives a power loss) against NORMAL (the last
// commits may be lost on power loss), on the same work, alternating, in one
// run. The work is the ledger-heavy case: many small files to a local
// directory without fsync (so the destination costs little and the ledger's
// commits are what is measured), first a push of every file, then a sync that
// deletes half of them (delete intents and outcomes).
//
//   npm run build && node dist/bench/ledger-durability.js [--files 2000] [--reps 5]

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openSqliteLedger } from '../src/ledger/sqlite.js';
import { push } from '../src/sync/push.js';
import { sync } from '../src/sync/sync.js';
import { stats } from './measure.js';
import { makeSmallTree } from './trees.js';

const { values } = parseArgs({ options: { files: { type: 'string', default: '2000' }, reps: { type: 'string', default: '5' } } });
const files = Number(values.files);
const reps = Number(values.reps);
type Mode = 'full' | 'normal';

interface Sample {
  readonly pushMs: number;
  readonly syncMs: number;
}

async function once(mode: Mode): Promise<Sample> {
  const dir = mkdtempSync(join(tmpdir(), `holdfast-durability-${mode}-`));
  try {
    const src = join(dir, 'src');
    const keys = await makeSmallTree(src, { files, dirs: 20, fileSize: 1024 });
    const ledger = await openSqliteLedger(join(dir, 'state', 'holdfast.db'), { synchronous: mode });
    try {
      const common = { source: src, destination: `file://${join(dir, 'dst')}`, ledger, stateDir: join(dir, 'state'), backendOptions: { fsync: false } };
      let t = performance.now();
      const p = await push(common);
      const pushMs = performance.now() - t;
      if (p.uploads.completed !== files) throw new Error(`push: ${JSON.stringify(p.uploads)}`);
      for (const k of keys.slice(0, Math.floor(files / 2))) rmSync(join(src, k));
      t = performance.now();
      const s = await sync({ ...common, maxDelete: '100%' });
      const syncMs = performance.now() - t;
      if (s.deletes?.completed !== Math.floor(files / 2)) throw new Error(`sync: ${JSON.stringify(s.deletes)}`);
      return { pushMs, syncMs };
    } finally {
      await ledger.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const samples: Record<Mode, Sample[]> = { full: [], normal: [] };
for (let r = 0; r < reps; r++) {
  // Alternating, so a noisy stretch of the machine hits both alike.
  for (const mode of r % 2 === 0 ? (['full', 'normal'] as const) : (['normal', 'full'] as const)) samples[mode].push(await once(mode));
}
const fmt = (v: number): string => `${(v / 1000).toFixed(2)} s`;
console.log(`ledger durability: ${files} files × 1 KiB to file:// (no fsync), ${reps} reps, medians (min–max)`);
for (const phase of ['pushMs', 'syncMs'] as const) {
  const full = stats(samples.full.map((s) => s[phase]));
  const normal = stats(samples.normal.map((s) => s[phase]));
  const what = phase === 'pushMs' ? `push ${files} files` : `sync deleting ${Math.floor(files / 2)}`;
  console.log(
    `  ${what.padEnd(22)} FULL ${fmt(full.median)} (${fmt(full.min)}–${fmt(full.max)})  NORMAL ${fmt(normal.median)} (${fmt(normal.min)}–${fmt(normal.max)})  FULL/NORMAL ${(full.median / normal.median).toFixed(2)}×  ` +
      `per file +${(((full.median - normal.median) / files) * 1000).toFixed(0)} µs`,
  );
}
