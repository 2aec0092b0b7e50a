// Renders a benchmark result file (bench/results/latest.json by default) as the
// Markdown tables used in docs/benchmarks.md.
//
//   node dist/bench/to-markdown.js [results.json]

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

interface Stats {
  median: number;
  min: number;
  max: number;
}
interface Row {
  kind: 's3' | 'local';
  scenario: string;
  tool: string;
  samples: { valid: boolean; userMs: number; sysMs: number }[];
  wallMs: Stats;
  cpuMs: Stats;
  maxRssKiB: Stats;
  s3rverCpuMs?: Stats;
}
interface Ratio {
  kind: string;
  scenario: string;
  tool: string;
  ratio: number;
  target: number;
  judged: boolean;
  met: boolean;
}
interface Results {
  date: string;
  durationS: number;
  machine: { nproc: number; cpuModel: string | null; memoryMiB: number; kernel: string };
  node: string;
  rclone: string;
  holdfast: { commit: string; srcDirty: boolean | null };
  loadAverage?: { start?: number; end?: number };
  config: { reps: number; files: number; changed: number; largeBytes: number };
  results: Row[];
  ratios: Ratio[];
}

const TITLES: Record<string, string> = {
  a: '(a) first sync',
  b: '(b) no-op re-run',
  c: '(c) 1% changed',
  d: '(d) one large file',
};
const TOOL: Record<string, string> = { holdfast: 'holdfast', 'holdfast-nofsync': 'holdfast `--no-fsync`', rclone: 'rclone' };

const s = (ms: number): string => (Number.isFinite(ms) ? (ms / 1000).toFixed(2) : '—');

function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

function main(): void {
  const file = process.argv[2] ?? join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'bench', 'results', 'latest.json');
  const r = JSON.parse(readFileSync(file, 'utf8')) as Results;
  const out: string[] = [];
  const load = r.loadAverage ? `; 1-min load average ${r.loadAverage.start?.toFixed(1)} at start, ${r.loadAverage.end?.toFixed(1)} at end` : '';
  out.push(
    `Run of ${r.date} (${Math.round(r.durationS / 60)} min): ${r.machine.nproc} CPUs (${r.machine.cpuModel ?? '?'}), ${Math.round(r.machine.memoryMiB / 1024)} GiB, Linux ${r.machine.kernel}, node ${r.node}, ${r.rclone}, holdfast ${r.holdfast.commit.slice(0, 7)}${r.holdfast.srcDirty ? ' (+ uncommitted src changes)' : ''}; medians of ${r.config.reps} runs${load}.`,
    '',
  );
  for (const kind of ['s3', 'local'] as const) {
    const rows = r.results.filter((x) => x.kind === kind);
    if (rows.length === 0) continue;
    out.push(kind === 's3' ? '**Destination: S3 (s3rver on 127.0.0.1)**' : '**Destination: local directory**', '');
    const s3 = kind === 's3';
    out.push(
      `| scenario | tool | wall s, median (min–max) | CPU s (user + sys) | peak RSS MiB |${s3 ? ' s3rver CPU s (busy) |' : ''} holdfast/rclone | target | verdict |`,
      `|---|---|---|---|---|${s3 ? '---|' : ''}---|---|---|`,
    );
    for (const sc of ['a', 'b', 'c', 'd']) {
      for (const row of rows.filter((x) => x.scenario === sc)) {
        const q = r.ratios.find((x) => x.kind === kind && x.scenario === sc && x.tool === row.tool);
        const busy = row.s3rverCpuMs ? `${s(row.s3rverCpuMs.median)} (${((100 * row.s3rverCpuMs.median) / row.wallMs.median).toFixed(0)}%)` : '';
        const invalid = row.samples.some((x) => !x.valid) ? ' ⚠' : '';
        const ok = row.samples.filter((x) => x.valid);
        const cells = [
          TITLES[sc] ?? sc,
          TOOL[row.tool] ?? row.tool,
          `${s(row.wallMs.median)} (${s(row.wallMs.min)}–${s(row.wallMs.max)})${invalid}`,
          `${s(row.cpuMs.median)} (${s(median(ok.map((x) => x.userMs)))} + ${s(median(ok.map((x) => x.sysMs)))})`,
          (row.maxRssKiB.median / 1024).toFixed(0),
          ...(s3 ? [busy] : []),
          q ? `${q.ratio.toFixed(2)}×` : '',
          q ? `≤ ${q.target.toFixed(1)}×` : '',
          q ? (q.judged ? (q.met ? 'met' : '**missed**') : 'info') : '',
        ];
        out.push(`| ${cells.join(' | ')} |`);
      }
    }
    out.push('');
  }
  console.log(out.join('\n'));
}

main();
