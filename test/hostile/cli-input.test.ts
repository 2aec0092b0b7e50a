// Careless input on the command line (issue 10, points 6 and 12): numbers that
// `Number()` would read as something else, empty paths that would mean "the
// current directory", and destination URLs that a URL parser silently
// rewrites (file:relative → /relative, s3://b/../x → s3://b/x). Each is refused
// before anything is created, with HOLDFAST_E_USAGE or HOLDFAST_E_BAD_URL
// (exit 1) naming the option or the URL and the spelling to use.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isHoldfastError } from '../../src/core/errors.js';
import { parseDecimal, parseDuration, parseSize, parseWholeNumber } from '../../src/core/units.js';
import { openLedger } from '../../src/ledger/open.js';
import { parseMaxDelete } from '../../src/sync/sync.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

/** Runs `fn` over `items`, at most `limit` at a time (each case is a CLI process; they are independent). */
async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

describe('strict numbers (core/units.ts)', () => {
  it('a whole number is digits only', () => {
    for (const ok of ['0', '4', '16', '1024']) assert.equal(parseWholeNumber(ok), Number(ok), ok);
    for (const bad of ['0x10', '1e2', ' 4', '4 ', '4.0', '+4', '-1', '', '0b1', '0o7', '٤', '1_000', 'Infinity', '99999999999999999999']) {
      assert.equal(parseWholeNumber(bad), undefined, JSON.stringify(bad));
    }
  });

  it('decimals, sizes and durations have one spelling each', () => {
    assert.equal(parseDecimal('0.5'), 0.5);
    for (const bad of ['1e2', '.5', '5.', ' 2', '0x1', '']) assert.equal(parseDecimal(bad), undefined, JSON.stringify(bad));
    assert.equal(parseSize('16MiB'), 16 * 1024 ** 2);
    assert.equal(parseSize('1.5GiB'), 1.5 * 1024 ** 3);
    assert.equal(parseSize('16 MiB'), 16 * 1024 ** 2);
    for (const bad of [' 8MiB', '8MiB ', '0x10', '1e6', '', 'MiB', '0.5b', '1.00000000001b', '16  MiB']) assert.equal(parseSize(bad), undefined, JSON.stringify(bad));
    assert.equal(parseDuration('24h'), 24 * 3_600_000);
    assert.equal(parseDuration('0'), 0);
    for (const bad of ['1.5h', ' 24h', '1e3', '0x10s', '', 'h']) assert.equal(parseDuration(bad), undefined, JSON.stringify(bad));
  });

  it('max-delete: a count or a percentage, nothing around it', () => {
    assert.deepEqual(parseMaxDelete('100'), { maxCount: 100 });
    assert.deepEqual(parseMaxDelete('10%'), { maxPercent: 10 });
    for (const bad of ['0x10', '1e2', ' 4', '4.0', '', '%', '101%']) {
      assert.throws(() => parseMaxDelete(bad), (e: unknown) => isHoldfastError(e) && e.code === 'HOLDFAST_E_USAGE', JSON.stringify(bad));
    }
  });
});

describe('holdfast: hostile command-line input', () => {
  let tmp: TempDir;
  let src: string;
  let dst: string;
  let state: string;
  const created: string[] = [];

  before(async () => {
    tmp = await makeTempDir('holdfast-hostile-cli-');
    src = join(tmp.path, 'src');
    mkdirSync(src);
    writeFileSync(join(src, 'a.txt'), 'alpha');
    dst = join(tmp.path, 'dst');
    state = join(tmp.path, 'state');
  });
  after(async () => {
    for (const p of created) rmSync(p, { recursive: true, force: true });
    await tmp.cleanup();
  });

  /** Nothing was created: no destination, no ledger, nothing new in the work directory. */
  function assertNothingCreated(r: CliResult, cwd?: string): void {
    assert.ok(!existsSync(dst), `the destination was created\n${r.stderr}`);
    assert.ok(!existsSync(state), `the state directory was created\n${r.stderr}`);
    if (cwd !== undefined) assert.deepEqual(readdirSync(cwd), [], 'nothing was written into the current directory');
  }

  function assertUsage(r: CliResult, option: RegExp, expected: RegExp): void {
    assert.equal(r.code, 1, r.stderr);
    const line = r.stderr.split('\n')[0] ?? '';
    assert.match(line, /^holdfast: HOLDFAST_E_USAGE: /, r.stderr);
    assert.match(line, option);
    assert.match(line, expected);
    assert.equal(r.stdout, '');
  }

  it('lenient integers are refused for every numeric option, naming the option and what it expects', async () => {
    const base = ['push', src, pathToFileURL(dst).href, '--state', state];
    const cases: [string[], RegExp, RegExp][] = [
      [['--transfers', '0x10'], /'--transfers <n>' argument '0x10'/, /whole number from 1 to 1024/],
      [['--transfers', '1e2'], /'--transfers <n>' argument '1e2'/, /whole number from 1 to 1024/],
      [['--transfers', ' 4'], /'--transfers <n>' argument ' 4'/, /digits only/],
      [['--transfers', '4.0'], /'--transfers <n>'/, /whole number/],
      [['--transfers', ''], /'--transfers <n>'/, /whole number/],
      [['--transfers', '2000'], /'--transfers <n>' argument '2000'/, /from 1 to 1024/],
      [['--retries', '1e1'], /'--retries <n>'/, /whole number/],
      [['--drain-timeout', '0x1e'], /'--drain-timeout <seconds>'/, /whole number/],
      [['--request-timeout', '1e3'], /'--request-timeout <seconds>'/, /whole number/],
      [['--part-size', ' 8MiB'], /'--part-size <size>'/, /size such as 8MiB/],
      [['--multipart-threshold', '1e9'], /'--multipart-threshold <size>'/, /size such as/],
    ];
    await eachLimited(cases, 3, async ([extra, option, expected]) => {
      const r = await runCli([...base, ...extra]);
      assertUsage(r, option, expected);
      assertNothingCreated(r);
    });
  });

  it('the other commands use the same parsers', async () => {
    const url = pathToFileURL(dst).href;
    const cases: [string[], RegExp, RegExp][] = [
      [['sync', src, url, '--state', state, '--max-delete', '0x10'], /'--max-delete <n\|n%>'/, /a count such as 100 or a percentage/],
      [['sync', src, url, '--state', state, '--max-delete', ' 5'], /'--max-delete <n\|n%>'/, /a count such as 100/],
      [['check', src, url, '--state', state, '--older-than', '1.5h'], /'--older-than <duration>'/, /whole number with an optional unit/],
      [['check', src, url, '--state', state, '--max-findings', '1e2'], /'--max-findings <n>'/, /whole number of at least 0/],
      [['check', src, url, '--state', state, '--sample', '1e1%'], /'--sample <percent>'/, /percentage/],
      [['status', '--state', state, '--limit', '0x10'], /'--limit <n>'/, /whole number/],
      [['runs', '--state', state, '--limit', ' 2'], /'--limit <n>'/, /whole number/],
      [['watch', src, url, '--state', state, '--quiet-period', '1e2'], /'--quiet-period <seconds>'/, /number of seconds/],
      [['pull', url, join(tmp.path, 'restore'), '--state', state, '--transfers', '0x4'], /'--transfers <n>'/, /whole number/],
    ];
    await eachLimited(cases, 3, async ([args, option, expected]) => {
      const r = await runCli(args, { timeoutMs: 30_000 });
      assertUsage(r, option, expected);
      assertNothingCreated(r);
      assert.ok(!existsSync(join(tmp.path, 'restore')));
    });
  });

  it('an empty --state is refused, never read as the current directory', async () => {
    const cwd = join(tmp.path, 'cwd');
    mkdirSync(cwd);
    const r = await runCli(['push', src, pathToFileURL(dst).href, '--state', ''], { cwd });
    assertUsage(r, /'--state <dir>' argument ''/, /expected a path/);
    assertNothingCreated(r, cwd);
    for (const cmd of [['status'], ['runs'], ['history', 'a.txt']]) {
      assertUsage(await runCli([...cmd, '--state', ''], { cwd }), /'--state <dir>'/, /expected a path/);
    }
    assert.deepEqual(readdirSync(cwd), []);
  });

  it('every path argument and option refuses the empty string', async () => {
    const cwd = join(tmp.path, 'cwd-paths');
    mkdirSync(cwd);
    writeFileSync(join(cwd, 'here.txt'), 'would be pushed if "" meant "."');
    const url = pathToFileURL(dst).href;
    const cases: [string[], RegExp][] = [
      [['push', '', url, '--state', state], /argument 'source-dir'|'source-dir'/],
      [['sync', '', url, '--state', state], /'source-dir'/],
      [['check', '', url, '--state', state], /'source-dir'/],
      [['pull', url, '', '--state', state], /'dir'/],
      [['run', 'nightly', '--config', ''], /'-c, --config <file>'/],
      [['config', 'check', '--config', ''], /'-c, --config <file>'/],
      [['cleanup', url, '--source', '', '--state', state], /'--source <dir>'/],
      [['push', src, url, '--state', state, '--s3-endpoint', ''], /'--s3-endpoint <url>'/],
      [['sync', src, url, '--state', state, '--backup-dir', ''], /'--backup-dir <url>'/],
    ];
    await eachLimited(cases, 3, async ([args, what]) => {
      const r = await runCli(args, { cwd });
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^holdfast: HOLDFAST_E_USAGE: /, args.join(' '));
      assert.match(r.stderr, what, args.join(' '));
      assertNothingCreated(r);
    });
    assert.deepEqual(readdirSync(cwd), ['here.txt']);
  });

  it('--help states the input rules; the inspecting commands say they only read', async () => {
    await eachLimited(['push', 'sync', 'watch', 'run', 'pull'], 3, async (cmd) => {
      const r = await runCli([cmd, '--help']);
      assert.equal(r.code, 0);
      assert.match(r.stdout, /numbers are digits only \(0x10, 1e2, " 4" are refused\); paths and URLs are never empty/, cmd);
      assert.match(r.stdout, /file:\/\/\/absolute\/path \(not file:relative\)/, cmd);
    });
    await eachLimited(['status', 'history', 'runs'], 3, async (cmd) => {
      const r = await runCli([cmd, '--help']);
      assert.match(r.stdout, /Read-only: the ledger is never created, migrated or written/, cmd);
    });
    assert.match((await runCli(['status', '--help'])).stdout, /"tracked" counts the objects the ledger records as stored/);
  });

  it('the library refuses an empty state directory too', async () => {
    await assert.rejects(openLedger({ stateDir: '' }), (e: unknown) => isHoldfastError(e) && e.code === 'HOLDFAST_E_USAGE');
  });

  it('file: URLs that are not absolute are refused with the absolute spelling, never resolved against "/"', async () => {
    // A name nobody has: before the fix, `file:<name>` became /<name> and a push (as root) created it.
    const name = `holdfast-hostile-${randomBytes(6).toString('hex')}`;
    created.push(`/${name}`, `/${name}-dot`);
    const cwd = join(tmp.path, 'cwd-url');
    mkdirSync(cwd);
    const cases: [string, RegExp][] = [
      [`file:${name}`, new RegExp(`must name an absolute path.*${pathToFileURL(join(cwd, name)).href.replace(/[/.]/g, '\\$&')}`)],
      [`file:./${name}-dot`, new RegExp(`must name an absolute path.*${pathToFileURL(join(cwd, `${name}-dot`)).href.replace(/[/.]/g, '\\$&')}`)],
      ['file:', /names no directory; expected file:\/\/\/absolute\/path/],
      [`file:/${name}`, new RegExp(`three slashes: file:///${name}`)],
      [`file://backup-host/${name}`, /"backup-host" is not this machine.*file:\/\/\/absolute\/path/],
    ];
    for (const [url, hint] of cases) {
      const r = await runCli(['push', src, url, '--state', state], { cwd });
      assert.equal(r.code, 1, `${url}: ${r.stderr}`);
      const line = r.stderr.split('\n')[0] ?? '';
      assert.ok(line.startsWith(`holdfast: HOLDFAST_E_BAD_URL: invalid destination URL "${url}": `), line);
      assert.match(line, hint);
      assert.ok(!existsSync(`/${name}`) && !existsSync(`/${name}-dot`), `${url} wrote into /`);
      assertNothingCreated(r, cwd);
    }
    // Still fine: the absolute form, and localhost.
    const ok = await runCli(['push', src, `file://localhost${pathToFileURL(dst).pathname}`, '--state', state, '--json']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(existsSync(join(dst, 'a.txt')));
    rmSync(dst, { recursive: true });
    rmSync(state, { recursive: true });
  });

  it('"." and ".." segments (also %2e), "//" and control characters are refused for every scheme, not resolved away', async () => {
    const cases: [string, RegExp][] = [
      ['s3://bkt/../x', /".." segment.*taken literally/],
      ['s3://bkt/a/%2e%2e/x', /"%2e%2e" segment/],
      ['s3://bkt/a/.%2E/x', /".%2E" segment/],
      ['s3://bkt/./x', /"\." segment/],
      ['s3://bkt//x', /empty segment \("\/\/"\)/],
      ['s3://bkt/a//b', /empty segment/],
      ['azure://container/../x', /".." segment/],
      ['azure://container//x', /empty segment/],
      ['s3://bkt/a\tb', /control character/],
      [`${pathToFileURL(tmp.path).href}/dst/../dst2`, new RegExp(`"\\.\\." segment; write the directory itself: ${pathToFileURL(join(tmp.path, 'dst2')).href.replace(/[/.]/g, '\\$&')}`)],
      [`${pathToFileURL(tmp.path).href}/%2e%2e/dst`, /"%2e%2e" segment/],
    ];
    await eachLimited(cases, 3, async ([url, hint]) => {
      // An endpoint nothing listens on: before the fix these went on to contact it (or wrote a rewritten path).
      const r = await runCli(['push', src, url, '--state', state, '--s3-endpoint', 'http://127.0.0.1:9', '--retries', '1'], {
        env: { AZURE_STORAGE_CONNECTION_STRING: 'DefaultEndpointsProtocol=http;AccountName=a;AccountKey=YQ==;BlobEndpoint=http://127.0.0.1:9/a;' },
      });
      assert.equal(r.code, 1, `${JSON.stringify(url)}: ${r.stderr}`);
      assert.match(r.stderr, /^holdfast: HOLDFAST_E_BAD_URL: invalid destination URL "/, url);
      assert.match(r.stderr, hint, url);
      assert.ok(!r.stderr.includes('\t'), 'control characters are not echoed raw');
      assertNothingCreated(r);
      assert.ok(!existsSync(join(tmp.path, 'dst2')));
    });
  });
});
