// Hostile input: a file operation that never returns (issue 10 #2). A read on
// a hung NFS mount, or on a FIFO without a writer, sits in Node's threadpool
// for ever; nothing can take it back. Two Ctrl-C must still end the process
// within seconds: the second aborts the run, which abandons the pending read
// (the plan gives way to the abort signal), records what it can and prints its
// report; the process, kept alive by the stuck thread (even `process.exit`
// waits for it), is then ended by re-raising SIGINT (a shell reports 130).
//
// The stuck operation is injected at the filesystem boundary, as a network
// filesystem would hang: a preloaded module (NODE_OPTIONS=--import) makes the
// read of one source file wait on a real blocking threadpool call — opening a
// FIFO that no one ever opens for writing — and drops a marker file when it
// starts, so the test signals the CLI exactly while the read hangs.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startCli } from '../helpers/cli.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

/** How long after the second Ctrl-C the process must be gone (the CLI's own bound is 5 s). */
const BOUND_MS = 15_000;

function hookSource(target: string, fifo: string, marker: string): string {
  return `
import { open } from 'node:fs/promises';
import { readlinkSync, writeFileSync } from 'node:fs';
const probe = await open(${JSON.stringify(process.execPath)}, 'r');
const proto = Object.getPrototypeOf(probe);
await probe.close();
const read = proto.read;
proto.read = function (...args) {
  let path = '';
  try { path = readlinkSync('/proc/self/fd/' + this.fd); } catch {}
  if (path !== ${JSON.stringify(target)}) return read.apply(this, args);
  writeFileSync(${JSON.stringify(marker)}, String(process.pid));
  // Never resolves: no one opens the FIFO for writing. A threadpool thread stays blocked in open(2).
  return open(${JSON.stringify(fifo)}, 'r').then(() => read.apply(this, args));
};
`;
}

describe('two Ctrl-C while a file read never returns', () => {
  let tmp: TempDir;
  before(async () => (tmp = await makeTempDir('holdfast-stuck-')));
  after(async () => tmp.cleanup());

  it('the process ends within the bound after the second Ctrl-C, with its report printed (cancelled)', { skip: process.platform !== 'linux' ? 'needs /proc/self/fd to pick the stuck file' : false }, async () => {
    const src = join(tmp.path, 'src');
    mkdirSync(src);
    writeFileSync(join(src, 'a.txt'), 'read normally');
    writeFileSync(join(src, 'stuck.bin'), Buffer.alloc(64 * 1024, 1));
    writeFileSync(join(src, 'z.txt'), 'read normally too');
    const fifo = join(tmp.path, 'never-written.fifo');
    execFileSync('mkfifo', [fifo]);
    const marker = join(tmp.path, 'read-is-stuck');
    const hook = join(tmp.path, 'stuck-read.mjs');
    writeFileSync(hook, hookSource(join(src, 'stuck.bin'), fifo, marker));

    const { child, done } = startCli(['push', src, `file://${join(tmp.path, 'dst')}`, '--json', '--quiet'], {
      env: { HOLDFAST_STATE: join(tmp.path, 'state'), NODE_OPTIONS: `--import=${pathToFileURL(hook).href}` },
      timeoutMs: 60_000,
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer | string) => (stderr += String(d)));
    await until('the read of stuck.bin to hang', () => existsSync(marker));
    child.kill('SIGINT');
    await until('the first Ctrl-C to be taken', () => /stopping/.test(stderr));
    const second = Date.now();
    child.kill('SIGINT');
    const r = await done;
    const elapsed = Date.now() - second;

    assert.ok(r.signal !== 'SIGKILL', `the process had to be killed: ${r.stderr}`);
    assert.ok(elapsed < BOUND_MS, `ended ${elapsed} ms after the second Ctrl-C`);
    // Ended by its own re-raised SIGINT (a shell shows 130), or with exit code 130 if nothing was stuck by then.
    assert.ok(r.code === 130 || (r.code === null && r.signal === 'SIGINT'), `code ${r.code}, signal ${r.signal}`);
    assert.match(r.stderr, /aborting in-flight transfers/);
    assert.match(r.stderr, /did not return/);
    const report = JSON.parse(r.stdout.trim()) as { status: string };
    assert.equal(report.status, 'cancelled', 'the run recorded its end and printed its report first');
  });
});
