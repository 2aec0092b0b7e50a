// `holdfast status [destination-url]`: what the ledger knows, per destination:
// counts and bytes per status, the last run, the destination's health, and
// the items that need attention (failed, stuck in progress, pending deletes).
// Read-only; also the home of the helpers `history` and `runs` share.

import type { Command } from 'commander';
import { EXIT } from '../../core/errors.js';
import { OBJECT_STATUSES } from '../../core/status.js';
import { status, type StatusReport, type DestinationStatus, type ItemSummary, type RunSummary } from '../../sync/inspect.js';
import { failCommand, intArg, LEDGER_HELP, ledgerChoiceFrom, out, pathArg, STATE_HELP, textArg } from '../common.js';
import { displayKey, formatBytes, formatDuration } from '../format.js';
import { formatTable, oneLine } from '../table.js';

export interface InspectFlags {
  state?: string;
  ledger?: string;
  json?: boolean;
  limit?: number;
}

export const INSPECT_EXIT_HELP = `
Read-only: the ledger is never created, migrated or written, so this works on a read-only
mount or for a user who may only read it, and sees what a running push has committed.

Exit codes:
  0    the answer was printed
  1    usage error, or a destination URL the ledger does not know (the known ones are listed)
  3    the ledger cannot be opened: none at --state / $HOLDFAST_STATE, unreadable, or in need
       of a migration (run a writing command such as push once, then try again)`;

/** Runs a read-only command: its JSON or text on stdout, errors on stderr; returns the exit code. */
export async function runReadOnly<T>(flags: InspectFlags, load: () => Promise<T>, text: (value: T) => string[]): Promise<number> {
  let value: T;
  try {
    value = await load();
  } catch (e) {
    return failCommand(e, flags.json === true);
  }
  out(flags.json === true ? `${JSON.stringify(value)}\n` : `${text(value).join('\n')}\n`);
  return EXIT.ok;
}

/** "2024-05-01 12:00:03Z" from an ISO time: seconds are enough for people, and it stays one column. */
export function shortTime(iso: string | null): string {
  return iso === null ? '-' : iso.replace('T', ' ').replace(/\.\d{3}Z$/, 'Z');
}

/** One line of a run's recorded counts: "12 uploaded (3.4 MiB), 1 failed, 2 deleted". */
export function runCounts(run: RunSummary): string {
  const s = run.summary;
  if (s === null) return run.status === 'running' ? 'running' : '-';
  const parts: string[] = [];
  const num = (v: unknown): number => (typeof v === 'number' ? v : 0);
  const uploads = (s.uploads ?? {}) as Record<string, unknown>;
  parts.push(`${num(uploads.completed)} uploaded (${formatBytes(num(s.bytes))})`);
  for (const [name, label] of [['skipped', 'unchanged'], ['recovered', 'recovered'], ['failed', 'failed'], ['partial', 'partial']] as const) {
    if (num(uploads[name]) > 0) parts.push(`${num(uploads[name])} ${label}`);
  }
  const deletes = s.deletes as Record<string, unknown> | undefined;
  if (deletes !== undefined) {
    if (num(deletes.completed) > 0) parts.push(`${num(deletes.completed)} deleted`);
    if (num(deletes.failed) > 0) parts.push(`${num(deletes.failed)} delete(s) failed`);
    if (num(deletes.refused) > 0) parts.push(`${num(deletes.refused)} delete(s) refused`);
  }
  return parts.join(', ');
}

export function runDuration(run: RunSummary): string {
  return run.durationMs === null ? '-' : formatDuration(run.durationMs);
}

function itemTable(items: readonly ItemSummary[], columns: 'failing' | 'stale' | 'pending'): string[] {
  const header =
    columns === 'failing'
      ? ['key', 'status', 'attempt', 'error', 'next retry']
      : columns === 'stale'
        ? ['key', 'status', 'lease owner', 'lease until']
        : ['key', 'since'];
  const rows = items.map((i) => {
    const key = displayKey(i.key);
    if (columns === 'failing') return [key, i.status, String(i.attempt), oneLine([i.errorCode ?? '-', i.errorMessage].filter((t) => t !== null && t !== '').join(': ')), shortTime(i.nextAttemptAt)];
    if (columns === 'stale') return [key, i.status, i.leaseOwner ?? '-', shortTime(i.leaseUntil)];
    return [key, shortTime(i.updatedAt)];
  });
  // The error message is the long, free-form column: keep it last in spirit by moving "next retry" before it.
  const ordered = columns === 'failing' ? [header, ...rows].map((r) => [r[0]!, r[1]!, r[2]!, r[4]!, r[3]!]) : [header, ...rows];
  return formatTable(ordered, { indent: '    ', ...(columns === 'failing' ? { right: [2] } : {}) });
}

function destinationText(d: DestinationStatus): string[] {
  // The endpoint or account, when the URL alone does not say where (one URL on two servers is two destinations).
  const where = d.identity !== null && /^[a-z0-9]+\+/.test(d.identity) ? `  at ${d.identity}` : '';
  const lines = [`${d.url}  (${d.kind})${where}`];
  const counted = OBJECT_STATUSES.filter((s) => d.objects[s].count > 0);
  if (counted.length === 0) lines.push('  no objects recorded yet');
  else lines.push(...formatTable([['status', 'objects', 'bytes'], ...counted.map((s) => [s, String(d.objects[s].count), formatBytes(d.objects[s].bytes)])], { indent: '  ', right: [1, 2] }));
  lines.push(`  tracked: ${d.tracked.count} object(s), ${formatBytes(d.tracked.bytes)} stored (upload_completed + delete_pending)`);
  const r = d.lastRun;
  lines.push(r === null ? '  last run: none' : `  last run: #${r.id} ${r.command} ${r.status}, started ${shortTime(r.startedAt)}, took ${runDuration(r)}: ${runCounts(r)}`);
  const h = d.health;
  const failures = h.consecutiveFailures > 0 ? `, ${h.consecutiveFailures} failing run(s) in a row` : '';
  lines.push(`  health: last upload ${shortTime(h.lastUploadAt)}, last result ${h.lastStatus ?? '-'}${failures}`);
  if (h.lastError !== null) lines.push(`          last error: ${oneLine(h.lastError)}`);
  if (d.failing.count > 0) {
    lines.push(`  failed (${d.failing.count}${d.failing.count > d.failing.items.length ? `, first ${d.failing.items.length} shown` : ''}) — the next push retries them after "next retry":`);
    lines.push(...itemTable(d.failing.items, 'failing'));
  }
  if (d.stale.items.length > 0) {
    const shown = d.stale.count > d.stale.items.length ? `, first ${d.stale.items.length} shown` : '';
    lines.push(`  interrupted (${d.stale.count} with an expired lease or a dead owner${shown}) — the next run resolves them by asking the destination:`);
    lines.push(...itemTable(d.stale.items, 'stale'));
  }
  if (d.deletePending.count > 0) {
    lines.push(`  delete pending (${d.deletePending.count}${d.deletePending.count > d.deletePending.items.length ? `, first ${d.deletePending.items.length} shown` : ''}) — recorded, not yet deleted:`);
    lines.push(...itemTable(d.deletePending.items, 'pending'));
  }
  lines.push(d.needsAttention === 0 ? '  nothing needs attention' : `  ${d.needsAttention} item(s) need attention`);
  return lines;
}

/** One line on the workers running now (none: nothing to say). */
function workersText(workers: StatusReport['workers']): string[] {
  if (workers.length === 0) return [];
  const running = workers.filter((w) => w.state === 'running');
  const silent = workers.filter((w) => w.state === 'silent');
  const hosts = [...new Set(running.map((w) => w.host))];
  const leased = workers.reduce((n, w) => n + w.leased, 0);
  const parts = [`${running.length} running${hosts.length > 0 ? ` on ${hosts.join(', ')}` : ''}`];
  if (silent.length > 0) parts.push(`${silent.length} silent (dead to the others: the next run takes their rows over)`);
  return ['', `workers: ${parts.join(', ')}; ${leased} row(s) leased — holdfast workers lists them`];
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('Show what the ledger knows: objects per status, the last run, destination health, and items needing attention.')
    .argument('[destination-url]', 'only this destination (default: every destination in the ledger)')
    .option('--state <dir>', STATE_HELP, pathArg)
    .option('--ledger <url>', LEDGER_HELP, textArg)
    .option('--limit <n>', 'items listed per section (failed, interrupted, delete pending)', intArg, 20)
    .option('--json', 'print one JSON object on stdout')
    .addHelpText(
      'after',
      `
"tracked" counts the objects the ledger records as stored on the destination (upload_completed
and delete_pending rows, as --max-delete does); failed or pending uploads are not tracked.

Examples:
  holdfast status
  holdfast status s3://my-bucket/photos --json
${INSPECT_EXIT_HELP}`,
    )
    .action(async (destination: string | undefined, flags: InspectFlags) => {
      process.exitCode = await runReadOnly(
        flags,
        () => status({ ...ledgerChoiceFrom(flags), ...(destination !== undefined ? { destination } : {}), ...(flags.limit !== undefined ? { limit: flags.limit } : {}) }),
        (report) => {
          const lines: string[] = report.destinations.length === 0 ? [`the ledger at ${report.ledger} tracks no destinations yet`] : [];
          for (const d of report.destinations) lines.push(...destinationText(d), '');
          if (report.destinations.length > 0) lines.pop();
          lines.push(...workersText(report.workers));
          return lines;
        },
      );
    });
}
