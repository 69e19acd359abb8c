/**
 * LPIPS (Zhang et al. 2018) on an ONNX export the user supplies (e.g. the `lpips` package's
 * AlexNet or VGG variant exported with two inputs): the graph takes two [N, 3, H, W] pictures
 * scaled to [-1, 1], as `lpips.LPIPS.forward` does with `normalize=False`, and returns one
 * distance per pair (any shape with N values). Lower is closer.
 */
import { existsSync } from 'node:fs';
import { ConfigError, ModelFormatError } from '../errors.js';
import { Session } from '../runtime/session.js';

export class LpipsModel {
  private constructor(private readonly session: Session, readonly file: string) {}

  static async load(file: string): Promise<LpipsModel> {
    if (!existsSync(file)) throw new ConfigError('LPIPS_MODEL_MISSING', `LPIPS model not found: ${file}`, 'lpips');
    const session = await Session.create(file);
    if (session.inputNames.length !== 2) {
      throw new ModelFormatError('LPIPS_INPUTS', `an LPIPS graph takes two pictures (its inputs: ${session.inputNames.join(', ') || 'none'})`, { file });
    }
    return new LpipsModel(session, file);
  }

  /** One distance per picture pair of [N, 3, H, W] batches in [0, 1]. */
  async distances(images: Float32Array, base: Float32Array, dims: readonly number[]): Promise<number[]> {
    const n = dims[0]!;
    const scale = (x: Float32Array) => Float32Array.from(x, (v) => v * 2 - 1);
    const [a, b] = this.session.inputNames as [string, string];
    const out = (await this.session.run({ [a]: { dtype: 'float32', dims, data: scale(images) }, [b]: { dtype: 'float32', dims, data: scale(base) } })).outputs;
    const d = Object.values(out)[0]!.data as Float32Array;
    if (d.length !== n) throw new ModelFormatError('LPIPS_OUTPUT', `the LPIPS graph returned ${d.length} values for ${n} pairs`, { file: this.file });
    return Array.from(d);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
