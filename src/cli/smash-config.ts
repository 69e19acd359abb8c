/** The SmashConfig of `optimize` and `generate`: a `--config` file, `--with` flags over it, or neither. */
import { SmashConfig } from '../smash/config.js';

export const WITH_HELP = 'algorithms on the command line, each `name` or `name.key=value`, over --config\'s: fora fora.interval=3 int8Dynamic.exclude=*norm*,proj_out';

export function smashConfigOption(o: { config?: string; with?: readonly string[] }): SmashConfig | undefined {
  return o.config || o.with?.length ? SmashConfig.fromCli(o.config, o.with ?? []) : undefined;
}
