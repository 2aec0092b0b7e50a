// `holdfast config check`: validates the configuration file and shows what
// each job would do — its source, its destinations (secrets never shown) and
// its rules in words. Contacts nothing and changes nothing.

import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { redactUrl } from '../../backends/registry.js';
import { describeRule, formatWarnings, loadConfig, type Config, type JobConfig, type LoadedConfig } from '../../config/index.js';
import { EXIT } from '../../core/errors.js';
import { err, failCommand, out, pathArg } from '../common.js';
import { formatBytes } from '../format.js';
import { CONFIG_OPTION_HELP } from './run.js';

interface CheckFlags {
  config?: string;
  json?: boolean;
}

export function registerConfig(program: Command): void {
  const config = program.command('config').description('Work with the configuration file (see `holdfast config check`).');
  config
    .command('check')
    .description('Validate the configuration file and show each job: source, destinations (secrets hidden) and rules.')
    .option('-c, --config <file>', CONFIG_OPTION_HELP, pathArg)
    .option('--json', 'print the resolved configuration as one JSON object on stdout')
    .addHelpText(
      'after',
      `
Every problem in the file is listed, each with its line, column and field:
  holdfast.yaml:12:5: jobs.nightly.rules[1].to[0]: unknown destination "azur" (known: offsite, local)
The file must be a regular file of at most 1 MiB; YAML aliases that expand to too much
(an "alias bomb") are refused.

Exit codes:
  0    the file is valid (warnings, if any, are on stderr)
  1    the file is missing or invalid (HOLDFAST_E_CONFIG)

Examples:
  holdfast config check
  holdfast config check --config /etc/holdfast/holdfast.yaml --json`,
    )
    .action((flags: CheckFlags) => {
      let loaded: LoadedConfig;
      try {
        loaded = loadConfig(flags.config);
      } catch (e) {
        process.exitCode = failCommand(e, flags.json === true);
        return;
      }
      for (const line of formatWarnings(loaded)) err(`${line}\n`);
      out(flags.json ? `${JSON.stringify(configJson(loaded))}\n` : `${configText(loaded.config)}\n`);
      process.exitCode = EXIT.ok;
    });
}

function settingsOf(job: JobConfig): string[] {
  const s = job.settings;
  const parts: string[] = [];
  if (s.mode !== undefined) parts.push(`mode ${s.mode}`);
  if (s.force === true) parts.push('force');
  if (s.transfers !== undefined) parts.push(`transfers ${s.transfers}`);
  if (s.followSymlinks === true) parts.push('follow symlinks');
  if (s.multipartThreshold !== undefined) parts.push(`multipart threshold ${formatBytes(s.multipartThreshold)}`);
  if (s.partSize !== undefined) parts.push(`part size ${formatBytes(s.partSize)}`);
  if (s.retries !== undefined) parts.push(`retries ${s.retries}`);
  const d = job.deletion;
  if (d !== undefined) {
    parts.push(`max delete ${d.maxDelete ?? '50%'}`);
    if (d.allowEmptySource === true) parts.push('allow empty source');
    if (d.deleteExcluded === true) parts.push('delete excluded');
    if (d.backupDir !== undefined) parts.push(`backup dir ${redactUrl(d.backupDir)}`);
  }
  return parts;
}

export function configText(config: Config): string {
  const lines: string[] = [`${config.file}: valid`];
  if (config.ledgerUrl !== undefined) lines.push(`ledger: ${redactUrl(config.ledgerUrl)}`);
  else if (config.stateDir !== undefined) lines.push(`ledger: ${config.stateDir}`);
  lines.push('destinations:');
  const width = Math.max(...[...config.destinations.keys()].map((n) => n.length));
  for (const d of config.destinations.values()) {
    const shown = d.shown.map((s) => `${s.field}: ${s.value}`).join(', ');
    lines.push(`  ${d.name.padEnd(width)}  ${redactUrl(d.url)}${shown ? `  (${shown})` : ''}`);
  }
  if (config.types.size > 0) {
    lines.push('types:');
    for (const [name, globs] of config.types) lines.push(`  ${name}: ${globs.join(', ')}`);
  }
  lines.push('jobs:');
  for (const job of config.jobs.values()) {
    lines.push(`  ${job.name}: ${job.command} ${job.source} → ${job.to.join(', ')}${job.description !== undefined ? `  # ${job.description}` : ''}`);
    if (!existsSync(job.source)) lines.push('    (the source directory does not exist yet)');
    if (job.exclude.length > 0) lines.push(`    exclude: ${job.exclude.join(', ')}`);
    const settings = settingsOf(job);
    if (settings.length > 0) lines.push(`    settings: ${settings.join(', ')}`);
    if (job.rules === undefined) lines.push(`    every file → ${job.to.join(', ')}`);
    else {
      lines.push('    rules (the first that matches decides; a file no rule matches goes nowhere):');
      for (const r of job.rules) lines.push(`      ${r.index + 1}. ${describeRule(r, formatBytes)}`);
    }
  }
  return lines.join('\n');
}

/** The resolved configuration for programs: the same facts as the text, secrets as hidden there. */
function configJson(loaded: LoadedConfig): unknown {
  const c = loaded.config;
  return {
    file: c.file,
    valid: true,
    version: c.version,
    ...(c.stateDir !== undefined ? { state: c.stateDir } : {}),
    ...(c.ledgerUrl !== undefined ? { ledger: redactUrl(c.ledgerUrl) } : {}),
    destinations: Object.fromEntries([...c.destinations.values()].map((d) => [d.name, { url: redactUrl(d.url), ...Object.fromEntries(d.shown.map((s) => [s.field, s.value])) }])),
    types: Object.fromEntries(c.types),
    jobs: Object.fromEntries(
      [...c.jobs.values()].map((j) => [
        j.name,
        {
          command: j.command,
          source: j.source,
          to: j.to,
          exclude: j.exclude,
          ...j.settings,
          ...(j.deletion ?? {}),
          ...(j.rules !== undefined ? { rules: j.rules.map((r) => ({ ...r, pos: undefined, index: undefined, explained: describeRule(r, formatBytes) })) } : {}),
        },
      ]),
    ),
    warnings: formatWarnings(loaded),
  };
}
