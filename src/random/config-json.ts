/**
 * config.json text with the value types of the released configs. JSON.stringify writes 1.0 as
 * `1`, and transformers 5's strict config classes reject an int where the class declares a float
 * (`"initializer_factor": 1` failed `from_pretrained`). Keys declared float are written with a
 * fraction (`1.0`), as Python's json writes floats.
 */

/** Keys whose released values are floats, per class (transformers config classes, diffusers schedulers). */
export const FLOAT_KEYS: Record<string, readonly string[]> = {
  CLIPTextModel: ['attention_dropout', 'dropout', 'initializer_factor', 'initializer_range', 'layer_norm_eps'],
  CLIPTextModelWithProjection: ['attention_dropout', 'dropout', 'initializer_factor', 'initializer_range', 'layer_norm_eps'],
  T5EncoderModel: ['classifier_dropout', 'dropout_rate', 'initializer_factor', 'layer_norm_epsilon'],
  UNet2DConditionModel: ['norm_eps', 'resnet_out_scale_factor'],
  AutoencoderKL: ['scaling_factor', 'shift_factor'],
  FlowMatchEulerDiscreteScheduler: ['shift', 'base_shift', 'max_shift'],
  EulerDiscreteScheduler: ['beta_start', 'beta_end'],
  PNDMScheduler: ['beta_start', 'beta_end'],
  DDIMScheduler: ['beta_start', 'beta_end'],
};

function classOf(config: Record<string, unknown>): string | undefined {
  const c = config._class_name ?? (Array.isArray(config.architectures) ? config.architectures[0] : undefined);
  return typeof c === 'string' ? c : undefined;
}

/** Pretty JSON (2 spaces, final newline) with FLOAT_KEYS of the config's class written as floats. */
export function configText(config: Record<string, unknown>, className = classOf(config)): string {
  const floats = new Set(className ? FLOAT_KEYS[className] ?? [] : []);
  const mark = '\u0000float:';
  const text = JSON.stringify(config, (key, value) => (floats.has(key) && Number.isInteger(value) ? `${mark}${value}` : value), 2);
  return `${text.replace(/"\\u0000float:(-?\d+)"/g, '$1.0')}\n`;
}
