// The final report, for people (text) and for programs (--json on stdout).

import type { RunReport } from '../core/report.js';
import { displayKey, formatBytes, formatDuration } from './format.js';

export interface PlannedItem {
  /** Set in a run over several destinations. */
  readonly destination?: string;
  readonly key: string;
  readonly action: string;
  readonly reason: string;
  readonly size: number;
}

/**
 * The JSON report: the RunReport (top-level counts are the sums; one section
 * per destination under `destinations`), plus the plan when it was a dry run.
 * `destination` is the URL when there is one destination.
 */
export function jsonReport(report: RunReport, extra: { destination: string; dryRun: boolean; plan?: readonly PlannedItem[] }): string {
  const several = (report.destinations?.length ?? 1) > 1;
  const out: Record<string, unknown> = { ...report, ...(several ? {} : { destination: extra.destination }), dryRun: extra.dryRun };
  if (extra.plan) out.plan = extra.plan;
  return JSON.stringify(out);
}

/** The report for people: with several destinations, one section each, then the totals. */
export function textReport(report: RunReport, extra: { destination: string; dryRun: boolean; planned?: readonly PlannedItem[] }): string {
  const sections = report.destinations ?? [];
  if (sections.length <= 1) return oneDestination(report, extra);
  const lines: string[] = [];
  for (const s of sections) {
    lines.push(`== ${s.name !== undefined ? `${s.name} (${s.destination})` : s.destination}`);
    const planned = extra.planned?.filter((p) => p.destination === s.destination);
    lines.push(oneDestination(s, { destination: s.destination, dryRun: extra.dryRun, ...(planned ? { planned } : {}) }, '  '));
  }
  const u = report.uploads;
  const failedOnes = sections.filter((s) => s.status !== 'completed').map((s) => s.name ?? s.destination);
  lines.push(
    `${report.status} on ${sections.length} destinations: ${u.completed} uploaded (${formatBytes(report.bytes)}), ${u.skipped} unchanged, ${u.recovered} recovered, ${u.failed} failed, ${u.partial} partial${fencedPart(u.fenced)} — ${formatDuration(report.durationMs)}`,
  );
  if (failedOnes.length > 0 && !extra.dryRun) lines.push(`not completed: ${failedOnes.join(', ')}; the others are unaffected. Run the same command again to retry.`);
  return lines.join('\n');
}

/** ", 3 fenced": shown only when some were (a rare event worth seeing, noise otherwise). */
function fencedPart(n: number | undefined): string {
  return n !== undefined && n > 0 ? `, ${n} fenced` : '';
}

function oneDestination(report: RunReport, extra: { destination: string; dryRun: boolean; planned?: readonly PlannedItem[] }, indent = ''): string {
  const lines: string[] = [];
  const u = report.uploads;
  if (extra.dryRun) {
    const items = extra.planned ?? [];
    for (const p of items) lines.push(`would ${p.action.padEnd(6)}  ${p.reason.padEnd(8)} ${p.action === 'delete' ? ''.padStart(10) : formatBytes(p.size).padStart(10)}  ${displayKey(p.key)}`);
    const uploads = items.filter((p) => p.action === 'upload');
    const deletes = items.filter((p) => p.action === 'delete');
    const bytes = uploads.reduce((n, p) => n + p.size, 0);
    const del = report.deletes ? `, delete ${deletes.length} object(s)` : '';
    lines.push(`dry run: would upload ${uploads.length} file(s) (${formatBytes(bytes)})${del} on ${extra.destination}; ${u.skipped} unchanged; nothing was changed`);
  } else {
    const d = report.deletes;
    const del = d ? `; ${d.completed} deleted${d.failed ? `, ${d.failed} delete(s) failed` : ''}${d.refused ? `, ${d.refused} delete(s) refused` : ''}` : '';
    lines.push(
      `${report.status}: ${u.completed} uploaded (${formatBytes(report.bytes)}), ${u.skipped} unchanged, ${u.recovered} recovered, ${u.failed} failed, ${u.partial} partial${fencedPart(u.fenced)}${del} — ${formatDuration(report.durationMs)}`,
    );
  }
  if (report.errors.length > 0) {
    lines.push(`${report.errors.length} error(s):`);
    const shown = report.errors.slice(0, 50);
    for (const e of shown) lines.push(`  ${e.key ? `${displayKey(e.key)}: ` : ''}${e.code}: ${e.message}`);
    if (report.errors.length > shown.length) lines.push(`  ... and ${report.errors.length - shown.length} more (use --json for all)`);
  }
  const notes = report.notes ?? [];
  if (notes.length > 0) {
    lines.push(`${notes.length} note(s):`);
    const shown = notes.slice(0, 20);
    for (const n of shown) lines.push(`  ${displayKey(n.key)}: ${n.note}`);
    if (notes.length > shown.length) lines.push(`  ... and ${notes.length - shown.length} more (use --json for all)`);
  }
  if (u.partial > 0) {
    lines.push('');
    lines.push(`NOTE: ${u.partial} file(s) reached the destination but the ledger could not record it (listed above with HOLDFAST_E_LEDGER_OUTCOME).`);
    lines.push('      No manual action is needed: the next run confirms them with the destination and sends nothing again.');
  }
  if (u.fenced > 0) {
    lines.push('');
    lines.push(`NOTE: ${u.fenced} file(s) were taken over by another run while this one worked on them (fenced, listed above):`);
    lines.push('      that run records what happened to them; this run wrote nothing for them.');
  }
  if (report.status === 'partial' || report.status === 'failed') {
    if (u.failed > 0 || u.partial > 0) lines.push('Run the same command again to retry the failed items.');
  }
  if (report.status === 'cancelled') lines.push('Cancelled: the ledger is consistent; run the same command again to continue.');
  return lines.map((l) => (l === '' ? l : indent + l)).join('\n');
}
