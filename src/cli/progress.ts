// Progress on stderr. On a TTY: a live status line (files, bytes, rate, ETA)
// redrawn ten times a second. Otherwise: plain lines — the plan, every
// failure, and a progress line every few seconds. Computed from the plan's
// files and bytes, not from step counts.

import type { RunEvents } from '../engine/events.js';
import { displayKey, formatBytes, formatDuration } from './format.js';

export interface ProgressOptions {
  readonly tty: boolean;
  readonly quiet: boolean;
  readonly verbose: boolean;
  readonly write: (text: string) => void;
  /** Terminal width for the live line. */
  readonly columns?: number;
}

export function attachProgress(events: RunEvents, opts: ProgressOptions): () => void {
  const state = {
    totalFiles: 0,
    totalBytes: 0,
    planned: false,
    doneFiles: 0,
    doneBytes: 0,
    failed: 0,
    inflight: new Map<string, { sent: number; size: number }>(),
    started: Date.now(),
    uploadStarted: 0,
    lastPlain: 0,
    lastLineLength: 0,
  };
  const offs: (() => void)[] = [];
  const plans = new Map<string, { files: number; bytes: number }>();
  /** In-flight files are keyed by destination and key: the same file may go to several destinations at once. */
  const id = (e: { readonly destination?: string; readonly key: string }): string => `${e.destination ?? ''}\0${e.key}`;
  const tagged = (e: { readonly destination?: string; readonly key: string }): string => (e.destination !== undefined ? `${e.destination}: ${displayKey(e.key)}` : displayKey(e.key));
  const w = opts.write;
  let timer: NodeJS.Timeout | undefined;

  const sentBytes = (): number => {
    let n = state.doneBytes;
    for (const f of state.inflight.values()) n += f.sent;
    return n;
  };

  const statusLine = (): string => {
    const sent = sentBytes();
    const elapsed = (Date.now() - (state.uploadStarted || state.started)) / 1000;
    const rate = elapsed > 0.5 ? sent / elapsed : 0;
    const remaining = state.totalBytes - sent;
    const eta = rate > 0 && remaining > 0 ? formatDuration((remaining / rate) * 1000) : '-';
    const files = state.planned ? `${state.doneFiles}/${state.totalFiles} files` : `${state.doneFiles} files`;
    const bytes = state.planned ? `${formatBytes(sent)}/${formatBytes(state.totalBytes)}` : formatBytes(sent);
    const fail = state.failed > 0 ? `  ${state.failed} failed` : '';
    return `${files}  ${bytes}  ${formatBytes(rate)}/s  ETA ${eta}${fail}`;
  };

  const bar = (fraction: number, width: number): string => {
    const filled = Math.max(0, Math.min(width, Math.round(fraction * width)));
    return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
  };

  const clearLive = (): void => {
    if (opts.tty && state.lastLineLength > 0) w('\r\x1b[2K');
    state.lastLineLength = 0;
  };

  const drawLive = (): void => {
    if (!state.planned) return;
    const fraction = state.totalBytes > 0 ? sentBytes() / state.totalBytes : state.totalFiles > 0 ? state.doneFiles / state.totalFiles : 1;
    const cols = opts.columns ?? 100;
    let line = `${bar(fraction, 20)} ${statusLine()}`;
    const current = [...state.inflight.keys()][0];
    if (current !== undefined && line.length + 4 < cols) line += `  ${displayKey(current.slice(current.indexOf('\0') + 1))}`;
    if (line.length > cols - 1) line = line.slice(0, cols - 1);
    w(`\r\x1b[2K${line}`);
    state.lastLineLength = line.length;
  };

  /** A line that must stay on screen (a failure, a notice): clear the live line, print, redraw. */
  const say = (text: string): void => {
    clearLive();
    w(`${text}\n`);
    if (opts.tty) drawLive();
  };

  offs.push(
    events.on('run:notice', (e) => {
      if (!opts.quiet || e.level === 'warn') say(`${e.level === 'warn' ? 'warning: ' : ''}${e.message}`);
    }),
    events.on('plan:ready', (e) => {
      // A run over several destinations plans once per destination: the totals are the sums.
      plans.set(e.destination ?? '', { files: e.files, bytes: e.bytes });
      state.totalFiles = [...plans.values()].reduce((n, p) => n + p.files, 0);
      state.totalBytes = [...plans.values()].reduce((n, p) => n + p.bytes, 0);
      const first = !state.planned;
      state.planned = true;
      if (first) state.uploadStarted = Date.now();
      const where = e.destination !== undefined ? ` to ${e.destination}` : '';
      if (!opts.quiet) say(`plan${where}: ${e.files} file(s) to ${e.action ?? 'upload'} (${formatBytes(e.bytes)}), ${e.skipped} unchanged`);
      if (opts.tty && !opts.quiet && e.files > 0 && timer === undefined) {
        timer = setInterval(drawLive, 100);
        timer.unref();
      }
    }),
    events.on('file:start', (e) => {
      state.inflight.set(id(e), { sent: 0, size: e.size });
    }),
    events.on('file:progress', (e) => {
      const f = state.inflight.get(id(e));
      if (f) f.sent = e.sentBytes;
    }),
    events.on('file:done', (e) => {
      state.inflight.delete(id(e));
      if (e.outcome === 'completed' || e.outcome === 'partial') {
        state.doneFiles++;
        state.doneBytes += e.bytes;
      }
      if (e.outcome === 'partial') say(`uploaded but not recorded: ${tagged(e)} (the next run confirms it without re-sending)`);
      else if (opts.verbose) say(`${e.outcome}: ${tagged(e)}`);
      plainTick();
    }),
    events.on('file:failed', (e) => {
      state.inflight.delete(id(e));
      state.failed++;
      if (!opts.quiet) say(`failed: ${tagged(e)}: ${e.code}: ${e.message}`);
      plainTick();
    }),
    events.on('file:skipped', (e) => {
      if (opts.verbose) say(`skipped: ${tagged(e)}: ${e.reason}`);
    }),
    events.on('run:done', () => {
      if (timer) clearInterval(timer);
      timer = undefined;
      clearLive();
    }),
  );

  function plainTick(): void {
    if (opts.tty || opts.quiet) return;
    const now = Date.now();
    if (now - state.lastPlain >= 5000) {
      state.lastPlain = now;
      w(`progress: ${statusLine()}\n`);
    }
  }

  return () => {
    if (timer) clearInterval(timer);
    clearLive();
    for (const off of offs) off();
  };
}

/** Progress for a command run from a terminal or a pipe: stderr, live on a TTY, plain lines otherwise. */
export function attachCliProgress(events: RunEvents, flags: { readonly quiet?: boolean; readonly verbose?: boolean }): () => void {
  return attachProgress(events, {
    tty: process.stderr.isTTY === true,
    quiet: flags.quiet === true,
    verbose: flags.verbose === true,
    write: (text) => void process.stderr.write(text),
    columns: process.stderr.columns,
  });
}
