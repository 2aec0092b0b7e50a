// The destination registry: URL parsing, schemes, redaction, and that opening
// a file:// destination does not load the AWS SDK (CLI startup time).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { openBackend, redactUrl, supportedSchemes } from '../../src/backends/registry.js';
import { isHoldfastError } from '../../src/core/errors.js';
import { withTempDir } from '../helpers/tmp.js';

const run = promisify(execFile);

async function error(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  assert.ok(isHoldfastError(e), `expected a HoldfastError, got ${String(e)}`);
  return { code: e.code, message: e.message };
}

describe('backend registry', () => {
  it('supports file, s3 and azure', () => {
    for (const scheme of ['file', 's3', 'azure', 'gdrive']) assert.ok(supportedSchemes().includes(scheme), `${scheme} is supported: ${supportedSchemes().join(', ')}`);
  });

  it('unknown scheme: HOLDFAST_E_UNKNOWN_SCHEME listing the supported ones', async () => {
    const e = await error(openBackend('ftp://example.com/x'));
    assert.equal(e.code, 'HOLDFAST_E_UNKNOWN_SCHEME');
    assert.match(e.message, /"ftp"/);
    assert.match(e.message, /file, s3/);
  });

  it('malformed URLs: HOLDFAST_E_BAD_URL, with a hint for bare paths', async () => {
    assert.equal((await error(openBackend(''))).code, 'HOLDFAST_E_BAD_URL');
    const bare = await error(openBackend('/var/backups'));
    assert.equal(bare.code, 'HOLDFAST_E_BAD_URL');
    assert.match(bare.message, /file:\/\/\/var\/backups/);
    assert.equal((await error(openBackend('file://remote-host/x'))).code, 'HOLDFAST_E_BAD_URL');
    assert.equal((await error(openBackend('s3://'))).code, 'HOLDFAST_E_BAD_URL');
    assert.equal((await error(openBackend('s3://bucket/a//b'))).code, 'HOLDFAST_E_BAD_URL');
  });

  it('URLs a parser would rewrite are refused as typed, with the spelling to use', async () => {
    const cases: [string, RegExp][] = [
      ['file:relative', /"file:relative": a file: URL must name an absolute path: file:\/\/\/absolute\/path \(for "relative" here: file:\/\/\//],
      ['file:./backup', /must name an absolute path/],
      ['file:', /names no directory/],
      ['file:/abs', /three slashes: file:\/\/\/abs/],
      ['file://host/path', /"host" is not this machine/],
      ['file:///a/../b', /".." segment; write the directory itself: file:\/\/\/b/],
      ['file:///a/%2E/b', /"%2E" segment/],
      ['s3://bkt/../x', /"s3:\/\/bkt\/..\/x": the prefix has a ".." segment/],
      ['s3://bkt/%2e%2e/x', /"%2e%2e" segment/],
      ['s3://bkt/./x', /"\." segment/],
      ['s3://bkt//x', /empty segment/],
      ['s3://bkt//', /empty segment/],
      ['azure://cont/../x', /".." segment/],
      ['azure://cont//x', /empty segment/],
      ['s3://bkt/a\nb', /control character/],
      [' s3://bkt/x', /surrounding spaces/],
    ];
    for (const [url, message] of cases) {
      const e = await error(openBackend(url, { s3Endpoint: 'http://127.0.0.1:1' }));
      assert.equal(e.code, 'HOLDFAST_E_BAD_URL', url);
      assert.match(e.message, message, url);
    }
    // Still accepted: a trailing slash, localhost, a bucket alone.
    for (const url of ['s3://bkt/', 's3://bkt', 's3://bkt/a/b/']) await (await openBackend(url, { s3Endpoint: 'http://127.0.0.1:1' })).close();
    await withTempDir('holdfast-reg-', async (dir) => {
      const b = await openBackend(`file://localhost${pathToFileURL(dir).pathname}/`);
      assert.equal(b.url, pathToFileURL(dir).href);
    });
  });

  it('a file:// URL object with another host is refused by the backend itself', async () => {
    const { createBackend } = await import('../../src/backends/local.js');
    const e = await error(createBackend(new URL('file://nas/backup'), {}));
    assert.equal(e.code, 'HOLDFAST_E_BAD_URL');
    assert.match(e.message, /"nas" is not this machine/);
  });

  it('s3 URLs with credentials are refused without echoing the secret', async () => {
    const e = await error(openBackend('s3://AKIAXXX:topsecret@bucket/prefix'));
    assert.equal(e.code, 'HOLDFAST_E_BAD_URL');
    assert.ok(!e.message.includes('topsecret'), e.message);
  });

  it('redactUrl strips user-info and secret-looking parameters', () => {
    assert.equal(redactUrl('s3://user:pass@bucket/p'), 's3://bucket/p');
    assert.equal(redactUrl('https://u:p@host/x?sig=abc&keep=1&X-Amz-Signature=zzz'), 'https://host/x?sig=***&keep=1&X-Amz-Signature=***');
    assert.equal(redactUrl('not a url //user:pw@x'), 'not a url //***@x');
    assert.equal(redactUrl('file:///plain/path'), 'file:///plain/path');
  });

  it('normalises URLs: file:// with percent-escapes and a trailing slash; s3 prefix gets a "/"', async () => {
    await withTempDir('holdfast-reg-', async (dir) => {
      const b = await openBackend(`${pathToFileURL(dir).href}/with%20space/`);
      assert.equal(b.url, pathToFileURL(`${dir}/with space`).href);
      assert.equal(b.kind, 'file');
    });
    const s3 = await openBackend('s3://bucket/some/prefix', { s3Endpoint: 'http://127.0.0.1:1' });
    assert.equal(s3.url, 's3://bucket/some/prefix/');
    assert.equal(s3.kind, 's3');
    await s3.close();
  });

  it('opening a file:// destination does not load the AWS SDK; s3:// does', async () => {
    const registry = fileURLToPath(new URL('../../src/backends/registry.js', import.meta.url));
    const script = (url: string): string => `
      import { createRequire } from 'node:module';
      const { openBackend } = await import(${JSON.stringify(pathToFileURL(registry).href)});
      await openBackend(${JSON.stringify(url)}, { s3Endpoint: 'http://127.0.0.1:1' });
      const loaded = Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('@aws-sdk'));
      process.stdout.write(String(loaded));`;
    const file = await run(process.execPath, ['--input-type=module', '-e', script('file:///tmp/holdfast-never-created')]);
    assert.equal(file.stdout, 'false');
    const s3 = await run(process.execPath, ['--input-type=module', '-e', script('s3://bucket/x')], {
      env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    });
    assert.equal(s3.stdout, 'true');
  });
});
