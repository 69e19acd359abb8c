import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { ConfigError, ModelFormatError } from '../../errors.js';
import { readPipelineIndex } from '../../models/convert.js';
import { FLUX_MAX_SEQUENCE_LENGTH } from '../../pipelines/flux.js';
import { loadTokenizer } from '../../tokenizers/index.js';

/** The tokenizer folders of a pipeline: model_index.json's `tokenizer*` entries, else the folders so named. */
function tokenizerFolders(model: string): string[] {
  if (!existsSync(model) || !statSync(model).isDirectory()) throw new ModelFormatError('FILE_MISSING', 'no such model folder', { file: model });
  const index = join(model, 'model_index.json');
  const names = existsSync(index)
    ? readPipelineIndex(index).filter(([k, [, cls]]) => k.startsWith('tokenizer') && cls).map(([k]) => k)
    : readdirSync(model).filter((n) => n.startsWith('tokenizer') && statSync(join(model, n)).isDirectory());
  if (!names.length) throw new ModelFormatError('COMPONENT_MISSING', 'the pipeline has no tokenizer', { file: model });
  return names.sort();
}

export function registerTokenize(p: Command) {
  p.command('tokenize')
    .description('print the token ids each tokenizer of a pipeline gives a prompt, as the pipeline feeds them (JSON)')
    .requiredOption('--model <dir>', 'pipeline folder (diffusers or ONNX)')
    .requiredOption('--prompt <text>', 'the prompt')
    .option('--max-sequence-length <n>', `length for T5-style tokenizers (default ${FLUX_MAX_SEQUENCE_LENGTH}, as Flux)`)
    .option('--no-padding', 'ids without padding')
    .action((o: { model: string; prompt: string; maxSequenceLength?: string; padding: boolean }) => {
      let maxSeq = FLUX_MAX_SEQUENCE_LENGTH;
      if (o.maxSequenceLength !== undefined) {
        maxSeq = Number(o.maxSequenceLength);
        if (!Number.isSafeInteger(maxSeq) || maxSeq < 1 || maxSeq > FLUX_MAX_SEQUENCE_LENGTH) {
          throw new ConfigError('BAD_OPTION', `--max-sequence-length must be an integer in 1..${FLUX_MAX_SEQUENCE_LENGTH}, got '${o.maxSequenceLength}'`, 'maxSequenceLength');
        }
      }
      const warnings: string[] = [];
      const tokenizers: Record<string, unknown> = {};
      for (const name of tokenizerFolders(o.model)) {
        const tok = loadTokenizer(join(o.model, name), { onWarning: (m) => warnings.push(`${name}: ${m}`) });
        // CLIP pads to its model_max_length (77); T5 to the pipeline's max_sequence_length
        const maxLength = tok.kind === 'clip' && Number.isFinite(tok.modelMaxLength) ? tok.modelMaxLength : maxSeq;
        const e = tok.encode(o.prompt, { maxLength, padding: o.padding, truncation: true });
        tokenizers[name] = {
          class: tok.tokenizerClass ?? null,
          kind: tok.kind,
          maxLength,
          length: e.attentionMask.reduce((a, b) => a + b, 0),
          truncatedTokens: e.truncatedTokens,
          ...(e.truncatedText ? { truncatedText: e.truncatedText } : {}),
          ids: e.ids,
        };
      }
      const json = JSON.stringify({ prompt: o.prompt, tokenizers, ...(warnings.length ? { warnings } : {}) }, null, 2);
      // id lists on one line each
      process.stdout.write(`${json.replace(/\[\s*(-?\d+(?:,\s*-?\d+)*)\s*\]/g, (_m, inner: string) => `[${inner.split(/,\s*/).join(', ')}]`)}\n`);
    });
}
