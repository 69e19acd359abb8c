/**
 * A pipeline from the Hugging Face Hub (`owner/repo`): only the files its pipeline class reads —
 * model_index.json first, then per listed component its config.json and safetensors weights (the
 * plain ones, or the variant asked for), the tokenizers' folders, the scheduler config and our
 * smash.json — into the Hub cache (see hub/download.ts). Returns the snapshot folder, which
 * loadPipeline then reads like any diffusers folder.
 */
import { ConfigError, ModelFormatError } from '../errors.js';
import { HubRepo, isRepoId, type HubOptions } from '../hub/download.js';
import { readPipelineIndex } from '../models/convert.js';
import { readJsonObject } from '../json.js';
import { PIPELINE_DESCRIPTIONS } from './registry.js';

export { isRepoId, hubCacheDir, type HubOptions } from '../hub/download.js';

const WEIGHTS = /^(diffusion_pytorch_model|model)(?:\.([\w-]+?))?(-\d{5}-of-\d{5})?\.safetensors$/;
const INDEX = /^(diffusion_pytorch_model|model)\.safetensors\.index(?:\.([\w-]+))?\.json$/;

/** Downloads (or finds in the cache) what the pipeline in `repo` needs; returns the snapshot folder. */
export async function downloadPipeline(repo: string, opts: HubOptions & { variant?: string; onWarning?: (m: string) => void } = {}): Promise<string> {
  if (!isRepoId(repo)) throw new ConfigError('HUB_REPO', `'${repo}' is not a Hub repository id (owner/name)`, 'model');
  const hub = new HubRepo(repo, opts);
  await hub.open();
  const indexFile = await hub.fetch('model_index.json');
  if (hub.files === null) return hub.snapshot; // offline: the cached snapshot as it is; the loader checks it
  const className = readJsonObject(indexFile, 'model_index.json', 'CONFIG_JSON')._class_name;
  const desc = PIPELINE_DESCRIPTIONS.find((d) => d.className === className);
  if (!desc) {
    throw new ModelFormatError('UNSUPPORTED_PIPELINE', `${repo}: pipeline class '${String(className)}' is not supported (supported: ${PIPELINE_DESCRIPTIONS.map((d) => d.className).join(', ')})`, { file: indexFile });
  }
  const listed = new Map(readPipelineIndex(indexFile).map(([k, [, cls]]) => [k, cls]));
  const need: string[] = [];
  for (const c of desc.components) {
    if (!listed.get(c.name)) continue; // the loader says what a required one lacks
    if (c.tokenizer && !listed.get(c.tokenizer)) continue; // an encoder without its tokenizer is not loaded
    need.push(`${c.name}/config.json`, ...weightFiles(hub, c.name, opts.variant, opts.onWarning));
    if (c.tokenizer) need.push(...hub.list(c.tokenizer));
  }
  need.push('scheduler/scheduler_config.json');
  if (hub.has('smash.json')) need.push('smash.json');
  for (const f of need) await hub.fetch(f);
  return hub.snapshot;
}

/** The safetensors files of one component: plain, the asked variant, or (said) the only variant there is. */
function weightFiles(hub: HubRepo, folder: string, variant: string | undefined, onWarning?: (m: string) => void): string[] {
  const files = hub.list(folder).map((f) => f.slice(folder.length + 1)).filter((f) => !f.includes('/'));
  const byVariant = new Map<string, string[]>();
  for (const f of files) {
    const m = WEIGHTS.exec(f) ?? INDEX.exec(f);
    if (!m) continue;
    const v = m[2] ?? '';
    byVariant.set(v, [...(byVariant.get(v) ?? []), `${folder}/${f}`]);
  }
  const want = variant ?? '';
  const pick = byVariant.get(want);
  if (pick) return pick;
  const others = [...byVariant.keys()].filter((v) => v);
  if (variant === undefined && others.length === 1) {
    onWarning?.(`${hub.repo}/${folder}: using the '${others[0]}' weights (the only safetensors there); pass a variant to choose`);
    return byVariant.get(others[0]!)!;
  }
  const has = files.some((f) => f.endsWith('.bin')) ? ' (only PyTorch .bin weights, which smash does not read)' : '';
  const what = variant ? `no '${variant}' safetensors weights` : 'no plain safetensors weights';
  const hint = others.length ? `; variants there: ${others.join(', ')} (pass one as the variant)` : has;
  throw new ModelFormatError('HUB_FILE_MISSING', `${hub.repo}: ${folder}/ has ${what}${hint}`, { file: `${hub.endpoint}/${hub.repo}` });
}
