import { Value } from '@sinclair/typebox/value';
import { parseDocument } from 'yaml';
import { ConfigError, errorMessage } from '../errors.ts';
import type { Host } from '../host/host.ts';
import { readLocalText } from '../host/local.ts';
import { decodeSection, yamlToJs } from './decode.ts';
import { upgradeDeprecatedKeys } from './deprecated.ts';
import { listenProblem } from './listen.ts';
import { AgentConfig } from './schema.ts';

export const DEFAULT_CONFIG_PATH = '/etc/kubenode/agent.yaml';

/**
 * Validates a parsed document against the schema, filling defaults; throws the first problem as a
 * ConfigError. Deprecated keys are read as their replacements; the warning for them goes to `warnings`.
 */
export function validateConfig(file: string, raw: unknown, warnings: string[] = []): AgentConfig {
  const given = raw ?? {};
  if (typeof given !== 'object' || Array.isArray(given)) {
    throw new ConfigError(file, '', 'expected a YAML mapping at the top level');
  }
  const { doc, warning } = upgradeDeprecatedKeys(file, given as Record<string, unknown>);
  if (warning !== undefined) warnings.push(warning);
  const config = decodeSection(file, AgentConfig, doc);
  const listen = listenProblem(config.listen);
  if (listen !== undefined) throw new ConfigError(file, 'listen', listen);
  return config;
}

export function parseConfigText(file: string, text: string, warnings: string[] = []): AgentConfig {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  const yamlError = doc.errors[0];
  if (yamlError !== undefined) {
    throw new ConfigError(file, '', `invalid YAML: ${yamlError.message.split('\n')[0]?.replace(/:$/, '')}`);
  }
  return validateConfig(file, yamlToJs(file, doc), warnings);
}

/**
 * Loads agent.yaml. An explicit --config path must exist; the default path may be
 * absent, and then the embedded defaults apply. The file is read through the Host,
 * so `--root` also replays a captured agent.yaml.
 */
export async function loadConfig(host: Host, explicitPath: string | undefined): Promise<{ config: AgentConfig; source: string; warnings: string[] }> {
  const warnings: string[] = [];
  if (explicitPath !== undefined) {
    let text: string;
    try {
      text = await readLocalText(explicitPath);
    } catch (err) {
      throw new ConfigError(explicitPath, '', `cannot read: ${errorMessage(err)}`);
    }
    return { config: parseConfigText(explicitPath, text, warnings), source: explicitPath, warnings };
  }
  const text = await host.tryReadText(DEFAULT_CONFIG_PATH);
  if (text === undefined) return { config: validateConfig('(defaults)', {}), source: '(embedded defaults)', warnings };
  return { config: parseConfigText(host.path(DEFAULT_CONFIG_PATH), text, warnings), source: host.path(DEFAULT_CONFIG_PATH), warnings };
}

export function defaultConfig(): AgentConfig {
  return validateConfig('(defaults)', {});
}

/** The defaults as agent.yaml would write them (durations as text). */
export function defaultConfigDocument(): unknown {
  return Value.Encode(AgentConfig, defaultConfig());
}
