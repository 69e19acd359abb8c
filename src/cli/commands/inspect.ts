import type { Command } from 'commander';
import { formatReport, inspectPath } from '../../inspect/inspect.js';

export function registerInspect(p: Command) {
  p.command('inspect')
    .description('describe an .onnx file, a safetensors file or sharded checkpoint, or a model/pipeline folder')
    .argument('<path>', 'file or folder')
    .option('--json', 'print one JSON object')
    .action((path: string, o: { json?: boolean }) => {
      const r = inspectPath(path);
      process.stdout.write(o.json ? `${JSON.stringify(r, null, 2)}\n` : `${formatReport(r)}\n`);
    });
}
