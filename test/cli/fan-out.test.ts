// `holdfast push <src> <dest> <dest>…` end to end: one section per
// destination in the text and --json reports, exit code 2 when one destination
// is down (and 0 once the next run has finished it), status showing each
// destination's health.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { parseJsonReport, runCli } from '../helpers/cli.js';
import { listTree, makeTempDir, type TempDir } from '../helpers/tmp.js';

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe('holdfast push to several destinations', () => {
  let tmp: TempDir;
  let src: string;
  before(async () => {
    tmp = await makeTempDir('holdfast-cli-fanout-');
    src = join(tmp.path, 'src');
    mkdirSync(join(src, 'db'), { recursive: true });
    writeFileSync(join(src, 'db', 'dump.sql.gz'), 'dump');
    writeFileSync(join(src, 'notes.txt'), 'notes');
  });
  after(async () => tmp.cleanup());

  it('reports each destination; one down makes the run partial (exit 2) without touching the other', async () => {
    const state = join(tmp.path, 'state');
    const a = `file://${join(tmp.path, 'a')}`;
    const port = await closedPort();
    const env = { AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y', AWS_REGION: 'us-east-1' };
    const down = ['push', src, a, 's3://offsite/host1', '--s3-endpoint', `http://127.0.0.1:${port}`, '--state', state, '--retries', '2'];
    const r = await runCli([...down, '--json'], { env });
    assert.equal(r.code, 2, r.stderr);
    const report = parseJsonReport(r);
    assert.equal(report.status, 'partial');
    assert.equal(report.destinations?.length, 2);
    const [sa, sb] = report.destinations ?? [];
    assert.equal(sa?.destination, a);
    assert.equal(sa?.status, 'completed');
    assert.equal(sa?.uploads.completed, 2);
    assert.equal(sb?.destination, 's3://offsite/host1/');
    assert.equal(sb?.status, 'failed');
    assert.equal(sb?.uploads.failed, 2);
    assert.ok(report.errors.every((e) => e.destination === 's3://offsite/host1/'));
    assert.deepEqual(listTree(join(tmp.path, 'a')), ['db/dump.sql.gz', 'notes.txt']);
    assert.match(r.stderr, /s3:\/\/offsite\/host1\/: .*ECONNREFUSED.*queued in the ledger/);

    const text = await runCli(down, { env });
    assert.equal(text.code, 2);
    assert.match(text.stdout, new RegExp(`^== ${a.replace(/[/.]/g, '\\$&')}\\n  completed: 0 uploaded`, 'm'));
    assert.match(text.stdout, /^== s3:\/\/offsite\/host1\/\n {2}failed: 0 uploaded .* 2 failed/m);
    assert.match(text.stdout, /^partial on 2 destinations: /m);
    assert.match(text.stdout, /not completed: s3:\/\/offsite\/host1\/; the others are unaffected/);

    const status = await runCli(['status', '--state', state]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /s3:\/\/offsite\/host1\/ {2}\(s3\)[\s\S]*health: last upload -, last result failed, 2 failing run\(s\) in a row/);
    assert.match(status.stdout, /last error: HOLDFAST_E_DEST_UNREACHABLE: destination unreachable: cannot reach/);

    // Alone, the unreachable destination stops the run (exit 3), and its health still records it.
    const alone = await runCli(['push', src, 's3://offsite/host1', '--s3-endpoint', `http://127.0.0.1:${port}`, '--state', state, '--retries', '1'], { env });
    assert.equal(alone.code, 3, alone.stderr);
    const after = await runCli(['status', 's3://offsite/host1', '--state', state]);
    assert.match(after.stdout, /last result failed, 3 failing run\(s\) in a row/);

    // With both destinations reachable the run completes, and exits 0.
    const b = `file://${join(tmp.path, 'b')}`;
    const ok = await runCli(['push', src, a, b, '--state', state, '--json']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(
      parseJsonReport(ok).destinations?.map((d) => [d.destination, d.uploads.completed, d.uploads.skipped]),
      [
        [a, 0, 2],
        [b, 2, 0],
      ],
    );
  });
});
