// The configuration file (docs/configuration.md): destinations, types of file,
// and jobs with rules saying which files go where.
//
//   const { config, warnings } = loadConfig();          // --config, $HOLDFAST_CONFIG, ./holdfast.yaml ...
//   const { command, options } = jobOptions(config, 'nightly', { dryRun: true });
//   const report = command === 'sync' ? await sync(options) : await push(options);

export { loadConfig, loadConfigText, findConfigFile, formatWarnings, DEFAULT_CONFIG_NAMES, type LoadConfigOptions, type LoadedConfig, type FoundConfigFile } from './load.js';
export { jobOptions, UNMATCHED_KEPT, type JobOverrides, type JobRun } from './job.js';
export { compileRules, describeRule, type CompiledRules } from './rules.js';
export { ConfigError, formatIssue, type ConfigIssue } from './diagnostics.js';
export {
  CONFIG_VERSION,
  type Config,
  type DestinationConfig,
  type JobConfig,
  type JobCommand,
  type JobSettings,
  type JobDeletion,
  type RuleConfig,
  type ShownSetting,
} from './schema.js';
