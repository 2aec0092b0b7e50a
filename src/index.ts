// The public library API of Holdfast. The CLI uses exactly this.
//
//   import { push, openLedger, openBackend, RunEvents } from 'holdfast';
//   const report = await push({ source: './photos', destination: 's3://bucket/photos' });

export { push, type PushOptions } from './sync/push.js';
export type { TransferOptions, DestinationSpec, FileFacts } from './sync/run.js';
export { watch, TEMP_FILE_PATTERNS, type WatchClock, type WatchOptions, type WatchRound, type WatchSummary } from './sync/watch.js';
export { sync, type SyncOptions } from './sync/sync.js';
export { pull, type PullOptions, type PullReport, type DownloadCounts, type PlannedDownload } from './sync/pull.js';
export {
  status,
  history,
  runs,
  findDestinations,
  type InspectOptions,
  type StatusReport,
  type DestinationStatus,
  type HistoryReport,
  type HistoryEntry,
  type RunsReport,
  type RunSummary,
  type ItemSummary,
} from './sync/inspect.js';
export { check, cleanup, CHECK_CATEGORIES, type CheckOptions, type CheckReport, type CheckCategory, type CheckFindings, type CleanupOptions, type CleanupReport, type CleanupItem, type CleanupAction } from './sync/cleanup.js';
export { DEFAULT_SETTINGS, type SyncSettings, type SyncMode } from './sync/context.js';
export {
  loadConfig,
  loadConfigText,
  findConfigFile,
  formatWarnings,
  jobOptions,
  compileRules,
  ConfigError,
  type Config,
  type LoadedConfig,
  type JobRun,
  type JobOverrides,
  type JobConfig,
  type DestinationConfig,
  type RuleConfig,
  type ConfigIssue,
} from './config/index.js';
export { openLedger, defaultStateDir } from './ledger/open.js';
export type { Ledger, OpenLedgerOptions, Outcome, PlannedUpload } from './ledger/ledger.js';
export { openBackend, supportedSchemes } from './backends/registry.js';
export type { Backend, BackendOptions, Capabilities, ObjectInfo, BodySource, PutOptions, MultipartApi } from './backends/backend.js';
export { MTIME_METADATA_KEY, SHA256_METADATA_KEY } from './backends/backend.js';
export { RunEvents, type RunEventMap, type RunEventName } from './engine/events.js';
export { Pipeline, type Step, type StepAction, type StepError, type PipelineContext, type PipelineOutcome, type PipelineState } from './engine/pipeline.js';
export { Cancellation } from './engine/cancellation.js';
export { withRetry, DEFAULT_RETRY, type RetryPolicy } from './engine/retry.js';
export { HoldfastError, ERROR_CODES, EXIT, classifyError, type ErrorCode } from './core/errors.js';
export { OBJECT_STATUSES, TRANSITIONS, canTransition, type ObjectStatus } from './core/status.js';
export { deriveRunStatus, combineReports, combineStatuses, emptyCounts, type RunReport, type DestinationReport, type FileResult, type FileOutcome, type UploadCounts, type ReportError } from './core/report.js';
export type { ObjectRow, DestinationRow, RunRow, HistoryRow, SourceFile, RunStatus } from './core/types.js';
