// Names Azure cannot keep as they are, end to end through the CLI against
// Azurite: a file named "a\b.txt" (which Azure would store as "a/b.txt", on top
// of the real "a/b.txt"), names ending in ".", a carriage return. push stores
// them under their documented blob names, check finds the destination
// consistent, pull restores every file under its own name, and a second push
// sends nothing (the ledger keeps the real keys).

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BlobServiceClient } from '@azure/storage-blob';
import { parseJsonReport, runCli, type CliResult } from '../helpers/cli.js';
import { startAzurite, type AzuriteServer } from '../helpers/azurite.js';
import { listTree, makeTempDir, type TempDir } from '../helpers/tmp.js';

const CONTAINER = 'names';
const FILES: Record<string, string> = {
  'a\\b.txt': 'the backslash file',
  'a/b.txt': 'the real a/b.txt',
  'notes.': 'ends with a dot',
  'v1./readme': 'in a folder ending with a dot',
  'Icon\r': 'a macOS folder icon file',
  'plain.txt': 'nothing special',
};
/** The blob names docs/destinations.md documents for these keys (under the "backup/" prefix). */
const STORED = ['a\uff3cb.txt', 'a/b.txt', 'notes\uff0e', 'v1\uff0e/readme', 'Icon\u240d', 'plain.txt'];

function json<T>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout.trim()) as T;
  } catch {
    throw new Error(`stdout is not one JSON object (exit ${r.code}):\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
}

describe('azure:// names Azure cannot keep, through the CLI', () => {
  let azurite: AzuriteServer;
  let tmp: TempDir;
  let env: NodeJS.ProcessEnv;
  let src: string;
  const dest = `azure://${CONTAINER}/backup`;

  before(async () => {
    azurite = await startAzurite();
    tmp = await makeTempDir('holdfast-azure-names-');
    env = { AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString, HOLDFAST_STATE: join(tmp.path, 'state') };
    src = join(tmp.path, 'src');
    for (const [key, content] of Object.entries(FILES)) {
      mkdirSync(join(src, key, '..'), { recursive: true });
      writeFileSync(join(src, key), content);
    }
  });
  after(async () => {
    await azurite?.stop();
    await tmp?.cleanup();
  });

  it('push stores them under their encoded names, check is consistent, pull restores them, a second push sends nothing', async () => {
    const first = await runCli(['push', src, dest, '--json'], { env });
    const pushed = parseJsonReport(first);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assert.equal(pushed.uploads.completed, Object.keys(FILES).length, JSON.stringify(pushed.errors));

    const names: string[] = [];
    for await (const b of BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient(CONTAINER).listBlobsFlat({ prefix: 'backup/' })) {
      names.push(b.name.slice('backup/'.length));
    }
    assert.deepEqual(names.sort(), [...STORED].sort());

    const check = await runCli(['check', src, dest, '--json'], { env });
    assert.equal(check.code, 0, check.stdout + check.stderr);
    assert.equal(json<{ status: string }>(check).status, 'consistent');

    const target = join(tmp.path, 'restored');
    const pull = await runCli(['pull', dest, target, '--json'], { env: { ...env, HOLDFAST_STATE: join(tmp.path, 'pull-state') } });
    assert.equal(pull.code, 0, pull.stdout + pull.stderr);
    assert.deepEqual(listTree(target), Object.keys(FILES).sort());
    for (const [key, content] of Object.entries(FILES)) assert.equal(readFileSync(join(target, key), 'utf8'), content, JSON.stringify(key));

    const second = await runCli(['push', src, dest, '--json'], { env });
    const again = parseJsonReport(second);
    assert.equal(second.code, 0, second.stdout + second.stderr);
    assert.equal(again.uploads.completed, 0);
    assert.equal(again.uploads.skipped, Object.keys(FILES).length);
    assert.equal(again.bytes, 0);
  });
});
