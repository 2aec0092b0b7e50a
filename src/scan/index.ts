// The scan room: walking the source, exclude rules, hashing, the file cache
// and change detection (DESIGN §5).

export { compareKeys, keyBefore } from './key-order.js';
export { IGNORE_FILE, MATCH_NOTHING, compileExcludes, excludesPath, parseIgnoreFile } from './ignore.js';
export type { Matcher } from './ignore.js';
export { SKIP_REASONS, createScanStats, walkSource } from './walk.js';
export type { ScanStats, WalkOptions } from './walk.js';
export { HASH_CHUNK_BYTES, createVerifyingStream, hashFile, readSmallFile, toMtimeMs } from './hash.js';
export type { HashResult } from './hash.js';
export { FileHasher } from './hasher.js';
export type { FileCacheStore, FileHasherOptions, FileHasherStats } from './hasher.js';
export { classifyChange, mergeJoin, sameMtimeMs } from './change-detection.js';
export type { Change, ChangeKind, ChangeMode, JoinedKey } from './change-detection.js';
