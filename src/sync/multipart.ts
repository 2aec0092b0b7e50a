// Multipart uploads with bounded memory and resume (DESIGN §3 "Resumable
// uploads"). One reader walks the file in order, hashing as it goes; each part
// waits for a request slot before its buffer is allocated, so at most
// `transfers × partSize` bytes are held. The upload id is recorded in the
// ledger before any part is sent, and every confirmed part right after it is
// confirmed, so a later run continues the same upload and sends only the parts
// the destination does not have. The upload is completed only if the bytes
// read hash to the intent's SHA-256; otherwise it is aborted (never a mix of
// old and new bytes).
//
// Where the destination takes parts only in order (`capabilities.sequentialParts`:
// Drive's resumable sessions), each part is sent and confirmed before the next
// one is read, so a file holds one part in memory, and a resumed upload
// continues after the longest unbroken run of confirmed parts.
//
// Each part's SHA-256 is sent with it (the server verifies it where it can: S3)
// and recorded in the ledger with the part ("sha256:<hex>" in `parts.checksum`).
// A resumed upload trusts a confirmed part only if the bytes at its place in
// the file hash to what was recorded: a part sent from other bytes (the file
// changed during the interrupted attempt and was changed back, say) is sent
// again; where parts cannot be replaced (sequential destinations), or where
// parts carry no recorded SHA-256 (written by an earlier version), the upload
// is started afresh.

import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { Capabilities, MultipartApi, PutResult, UploadedPart } from '../backends/backend.js';
import { classifyError, HoldfastError } from '../core/errors.js';
import { withRequestSignal } from '../core/abort.js';
import type { ObjectRow } from '../core/types.js';
import type { Limiter } from '../engine/limiter.js';
import { withRetry } from '../engine/retry.js';
import { openSourceFile } from '../scan/hash.js';
import type { SyncContext } from './context.js';
import type { RowLease } from './lease.js';

/**
 * The configured part size, raised if needed to fit the destination's
 * part-count and part-size limits, and rounded up to its part-size multiple.
 */
export function choosePartSize(size: number, wanted: number, caps: Capabilities): number {
  let part = Math.max(wanted, caps.minPartSize, Math.ceil(size / caps.maxParts));
  const unit = caps.partSizeMultiple ?? 1;
  part = Math.ceil(part / unit) * unit;
  part = Math.min(part, Math.floor(caps.maxPartSize / unit) * unit);
  return part;
}

/** The destination no longer has the upload (S3 NoSuchUpload; a backend's HoldfastError with details.gone = "upload"). */
function isUploadGone(e: unknown): boolean {
  if (e instanceof HoldfastError && e.details.gone === 'upload') return true;
  const name = (e as { name?: unknown }).name;
  return name === 'NoSuchUpload' || (e instanceof HoldfastError && e.cause !== undefined && isUploadGone(e.cause));
}

/** How `parts.checksum` records a part's SHA-256. */
const CHECKSUM_PREFIX = 'sha256:';

/** The SHA-256 (hex) a `parts.checksum` value records, if it records one. */
function recordedSha256(checksum: string | null | undefined): string | undefined {
  if (checksum === null || checksum === undefined || !checksum.startsWith(CHECKSUM_PREFIX)) return undefined;
  const hex = checksum.slice(CHECKSUM_PREFIX.length);
  return /^[0-9a-f]{64}$/.test(hex) ? hex : undefined;
}

/** The completed upload, and the bytes this run actually sent (a resumed upload sends only the missing parts). */
export interface MultipartResult {
  readonly result: PutResult;
  readonly sentBytes: number;
}

export async function uploadMultipart(ctx: SyncContext, requests: Limiter, row: ObjectRow, onProgress: (sentBytes: number) => void, lease: RowLease): Promise<MultipartResult> {
  const mp = ctx.backend.multipart as MultipartApi;
  const key = row.key;
  const size = row.size ?? 0;
  const sha256 = row.sha256 ?? '';
  const attemptId = row.attemptId ?? '';
  // Aborted by a hard cancellation, or when the row's lease is lost.
  const signal = lease.signal;
  const retry = { policy: ctx.settings.retry, signal, fallback: 'HOLDFAST_E_NETWORK' as const };
  const ledgerRetry = { policy: ctx.settings.retry, fallback: 'HOLDFAST_E_LEDGER_WRITE' as const };
  const sequential = ctx.backend.capabilities.sequentialParts;
  let partSize = choosePartSize(size, ctx.settings.partSize, ctx.backend.capabilities);
  let partCount = Math.max(1, Math.ceil(size / partSize));
  const lengthOf = (n: number): number => Math.min(partSize, size - (n - 1) * partSize);

  // Resume what the ledger says was confirmed, cross-checked with the destination where it can list parts.
  let uploadId = row.uploadId ?? undefined;
  const confirmed = new Map<number, UploadedPart>();
  if (uploadId !== undefined) {
    const id = uploadId;
    const known = await ctx.ledger.listParts(row.id, id);
    // Parts of a sequential upload are offsets into one stream, fixed when it was
    // created: a resumed upload keeps the part size it was started with.
    const first = known.find((p) => p.partNumber === 1);
    if (sequential && first !== undefined && first.size !== partSize && first.size < size) {
      partSize = first.size;
      partCount = Math.max(1, Math.ceil(size / partSize));
    }
    let remote: Map<number, UploadedPart> | undefined | 'gone';
    try {
      const listed = await withRetry(() => mp.listParts(key, id, { signal }), retry);
      remote = listed === undefined ? 'gone' : new Map(listed.map((p) => [p.partNumber, p]));
    } catch (e) {
      if (classifyError(e).code !== 'HOLDFAST_E_NOT_SUPPORTED') throw e;
      remote = undefined; // The server cannot list parts: trust the ledger's record (complete() verifies).
    }
    if (remote === 'gone') {
      uploadId = undefined;
      ctx.tally.note(key, 'the destination no longer knows the interrupted upload; starting a new one');
    } else if (known.some((p) => recordedSha256(p.checksum) === undefined)) {
      // Parts whose bytes cannot be checked, and an upload whose server may expect no part checksums: start again.
      uploadId = undefined;
      await mp.abort(key, id, { signal }).catch(() => undefined);
      ctx.tally.note(key, 'the interrupted upload has parts without a recorded SHA-256 (sent by an earlier version); starting a new one');
    } else {
      for (const p of known) {
        if (p.partNumber > partCount || p.size !== lengthOf(p.partNumber)) continue;
        const sha = recordedSha256(p.checksum);
        const r = remote?.get(p.partNumber);
        if (remote !== undefined && (r === undefined || r.etag !== p.etag || (r.sha256 !== undefined && r.sha256 !== sha))) continue;
        confirmed.set(p.partNumber, { partNumber: p.partNumber, size: p.size, etag: p.etag, ...(sha !== undefined ? { sha256: sha } : {}) });
      }
      if (sequential) {
        // Only an unbroken run from part 1 is usable: the next byte sent must follow the last one the destination holds.
        let gap = 1;
        while (confirmed.has(gap)) gap++;
        for (const n of [...confirmed.keys()]) if (n > gap) confirmed.delete(n);
      }
    }
  }
  if (uploadId === undefined) {
    const created = await withRetry(() => mp.create(key, { sha256, size, partSize, signal, ...(row.mtimeMs !== null ? { mtimeMs: row.mtimeMs } : {}) }), retry);
    const recorded = await withRetry(() => ctx.ledger.setUploadId(row.id, attemptId, created), ledgerRetry).catch((e: unknown) => {
      void mp.abort(key, created).catch(() => undefined);
      throw e;
    });
    if (!recorded) {
      await mp.abort(key, created).catch(() => undefined);
      throw new HoldfastError('HOLDFAST_E_LEDGER_OUTCOME', { key, detail: 'a newer attempt took this item over' });
    }
    uploadId = created;
  }
  const id = uploadId;

  const sibling = new AbortController();
  const onAbort = (): void => sibling.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  let failure: unknown;
  // Confirmed parts count once their bytes in the file are found to be the ones sent.
  let resumedBytes = 0;
  let sent = 0;
  let resumedParts = 0;
  let resent = 0;
  let restart = false;
  onProgress(sent);
  const hash = createHash('sha256');
  const sends: Promise<UploadedPart>[] = [];
  let fh: FileHandle | undefined;
  try {
    // Not through a symlink or into a FIFO swapped in since the plan; the plan's size and mtime, or nothing is read.
    ({ fh } = await openSourceFile(
      row.sourcePath ?? '',
      { size, ...(row.mtimeMs !== null ? { mtimeMs: row.mtimeMs } : {}) },
      { signal, followSymlinks: ctx.settings.followSymlinks, root: ctx.sourceRoot },
    ));
    for (let n = 1; n <= partCount && failure === undefined; n++) {
      const len = lengthOf(n);
      const release = await requests.acquire();
      let buf: Buffer;
      try {
        buf = await readExactly(fh, len, (n - 1) * partSize, key);
      } catch (e) {
        release();
        throw e;
      }
      hash.update(buf);
      const partSha = createHash('sha256').update(buf).digest('hex');
      const done = confirmed.get(n);
      if (done !== undefined && done.sha256 === partSha) {
        resumedParts++;
        resumedBytes += len;
        sent += len;
        onProgress(sent);
        release();
        continue;
      }
      if (done !== undefined) {
        // The destination holds other bytes for this part than the file has now.
        confirmed.delete(n);
        if (sequential) {
          // Offsets into one stream cannot be rewritten: the upload starts again.
          release();
          restart = true;
          break;
        }
        resent++;
      }
      const partNumber = n;
      const send = (async (): Promise<UploadedPart> => {
        try {
          // Its own signal: the SDK's listeners (and the retry's) go there, not on the one all parts share.
          const sentPart = await withRequestSignal(sibling.signal, (partSignal) =>
            withRetry(() => mp.uploadPart(key, id, partNumber, buf, { signal: partSignal, sha256: partSha }), { ...retry, signal: partSignal }),
          );
          const part: UploadedPart = { ...sentPart, sha256: partSha };
          const ok = await withRetry(
            () => ctx.ledger.recordPart({ objectId: row.id, uploadId: id, partNumber, size: len, etag: part.etag, checksum: CHECKSUM_PREFIX + partSha }, attemptId),
            ledgerRetry,
          );
          if (!ok) throw new HoldfastError('HOLDFAST_E_LEDGER_OUTCOME', { key, detail: 'a newer attempt took this item over' });
          sent += len;
          onProgress(sent);
          return part;
        } catch (e) {
          failure ??= e;
          sibling.abort(e);
          throw e;
        } finally {
          release();
        }
      })();
      send.catch(() => undefined);
      sends.push(send);
      // In order, one at a time: the next part is read only once this one is confirmed (or failed).
      if (sequential) await send.catch(() => undefined);
    }
    const settled = await Promise.allSettled(sends);
    if (restart && failure === undefined) {
      await mp.abort(key, id).catch(() => undefined);
      await withRetry(() => ctx.ledger.setUploadId(row.id, attemptId, null), ledgerRetry);
      ctx.tally.note(key, "a part of the interrupted upload did not match the file's bytes; starting a new upload");
      await fh.close();
      fh = undefined;
      return await uploadMultipart(ctx, requests, { ...row, uploadId: null }, onProgress, lease);
    }
    if (resumedParts > 0) ctx.tally.note(key, `resumed an interrupted upload: ${resumedParts} of ${partCount} parts already on the destination`);
    if (resent > 0) ctx.tally.note(key, `${resent} part(s) of the interrupted upload did not match the file's bytes and were sent again`);
    if (failure !== undefined) {
      // The upload stays resumable (upload id and confirmed parts are in the ledger) unless the destination dropped it.
      if (isUploadGone(failure)) await withRetry(() => ctx.ledger.setUploadId(row.id, attemptId, null), ledgerRetry).catch(() => undefined);
      throw classifyError(failure, 'HOLDFAST_E_NETWORK', { key });
    }
    if (hash.digest('hex') !== sha256) {
      await mp.abort(key, id).catch(() => undefined);
      await withRetry(() => ctx.ledger.setUploadId(row.id, attemptId, null), ledgerRetry).catch(() => undefined);
      throw new HoldfastError('HOLDFAST_E_SOURCE_CHANGED', { path: key });
    }
    const parts = [...confirmed.values()];
    for (const s of settled) if (s.status === 'fulfilled') parts.push(s.value);
    parts.sort((a, b) => a.partNumber - b.partNumber);
    try {
      // The fence, asked of the ledger itself: a stale completion must never land after
      // another run took the row over and sent its own content.
      await lease.confirm();
      const result = await withRetry(() => mp.complete(key, id, parts, { signal }), retry);
      return { result, sentBytes: sent - resumedBytes };
    } catch (e) {
      // The server may have completed the upload and only its answer was lost (a
      // reset after the request): retries then fail (NoSuchUpload, or s3rver's 500)
      // although the object is there. Ask the destination, as recovery would.
      if (!signal.aborted) {
        const info = await ctx.backend.head(key, { signal }).catch(() => undefined);
        if (info !== undefined && info.sha256 === sha256 && info.size === size) {
          return { result: { etag: info.etag, versionId: info.versionId }, sentBytes: sent - resumedBytes };
        }
      }
      if (isUploadGone(e)) await withRetry(() => ctx.ledger.setUploadId(row.id, attemptId, null), ledgerRetry).catch(() => undefined);
      throw e;
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    await fh?.close();
  }
}

async function readExactly(fh: FileHandle, length: number, position: number, key: string): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let off = 0;
  while (off < length) {
    const { bytesRead } = await fh.read(buf, off, length - off, position + off);
    if (bytesRead === 0) throw new HoldfastError('HOLDFAST_E_SOURCE_CHANGED', { path: key });
    off += bytesRead;
  }
  return buf;
}
