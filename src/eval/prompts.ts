/**
 * Prompt sets: our own built-in set (subjects, styles, compositions), the caption grammar of the
 * trained fixture pipelines, and prompts read from a text, JSON or CSV file.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { ConfigError, ModelFormatError } from '../errors.js';

/** 40 prompts of our own: animals, people, objects, places, food; photo, painting, drawing, 3D; close-ups, wide shots, groups. */
export const BUILTIN_PROMPTS: readonly string[] = [
  'a red fox sitting in fresh snow, morning light, photograph',
  'a close-up portrait of an old fisherman with a grey beard, studio lighting',
  'a bowl of ramen with a soft-boiled egg, top-down food photography',
  'a lighthouse on a rocky cliff during a storm, oil painting',
  'a tabby cat sleeping on a stack of books, watercolor',
  'an astronaut riding a horse on the moon, digital art',
  'a crowded night market in the rain, neon signs reflecting on the street',
  'a single red apple on a white table, minimalist product shot',
  'a medieval castle on a hill above a misty valley, wide landscape',
  'three children flying kites on a windy beach, film photograph',
  'a steam locomotive crossing a stone bridge in autumn',
  'a pencil sketch of a hummingbird drinking from a flower',
  'a cozy cabin interior with a fireplace and a sleeping dog',
  'a futuristic city skyline at sunset with flying cars, concept art',
  'a glass of orange juice next to croissants on a breakfast tray',
  'a humpback whale breaching in the open ocean, aerial view',
  'a robot watering plants in a greenhouse, 3D render',
  'a bicycle leaning against a yellow wall in a narrow alley',
  'a bouquet of sunflowers in a blue vase, impressionist painting',
  'a snowy mountain peak reflected in a still lake at dawn',
  'a jazz band playing in a small smoky club, black and white photo',
  'a pixel art knight standing in front of a dragon',
  'a macro photo of a dewdrop on a spider web',
  'two people sharing an umbrella on a city street, from behind',
  'a vintage red car parked in front of a diner, 1950s style',
  'an isometric illustration of a tiny island with a windmill',
  'a plate of sushi arranged on a slate board, overhead shot',
  'an owl perched on a branch under a full moon, woodcut print',
  'a desert road stretching to the horizon with a lone cactus',
  'a child building a sandcastle, bright summer colors, cartoon style',
  'a library with tall wooden shelves and a rolling ladder',
  'a marble statue of a woman in a museum hall, soft light',
  'a chessboard mid-game with dramatic side lighting',
  'a herd of elephants walking across the savanna at sunset',
  'an anime-style girl reading under a cherry blossom tree',
  'a stack of pancakes with berries and syrup, close-up',
  'a sailboat on calm turquoise water, seen from above',
  'a blacksmith hammering glowing metal in a dark forge',
  'a paper origami crane on a wooden desk, shallow depth of field',
  'a field of lavender with a farmhouse in the distance, golden hour',
];

const SIZES = ['small', 'large'] as const;
const COLOURS = ['red', 'green', 'blue', 'yellow', 'white', 'purple', 'orange', 'black'] as const;
const SHAPES = ['circle', 'square', 'triangle'] as const;
const PLACES = ['left', 'right', 'top', 'bottom', 'center'] as const;
const BACKGROUNDS = ['black', 'white', 'gray', 'blue', 'green'] as const;

/** Every caption the trained fixture pipelines (shapes-flux, shapes-sd) were trained on. */
export function allShapeCaptions(): string[] {
  const out: string[] = [];
  for (const bg of BACKGROUNDS) {
    for (const colour of COLOURS) {
      // the shape's colour is never the background's; on gray there is no white or black shape
      if (colour === bg || (bg === 'gray' && (colour === 'white' || colour === 'black'))) continue;
      for (const size of SIZES) for (const shape of SHAPES) for (const place of PLACES) out.push(`a ${size} ${colour} ${shape} at the ${place} on a ${bg} background`);
    }
  }
  return out;
}

/** `n` captions of the shapes grammar, spread evenly over all of them (deterministic). */
export function shapePrompts(n = 16): string[] {
  const all = allShapeCaptions();
  if (n < 1 || n > all.length) throw new RangeError(`between 1 and ${all.length} shape captions (asked ${n})`);
  // a stride coprime with the count walks every axis of the grammar
  const stride = 97;
  return Array.from({ length: n }, (_, i) => all[(i * stride) % all.length]!);
}

/** A prompt set by name: `builtin` or `shapes` (optionally `shapes:N`). */
export function namedPromptSet(name: string): string[] {
  if (name === 'builtin') return [...BUILTIN_PROMPTS];
  const m = /^shapes(?::(\d+))?$/.exec(name);
  if (m) return shapePrompts(m[1] ? Number(m[1]) : 16);
  throw new ConfigError('PROMPT_SET', `unknown prompt set '${name}' (known: builtin, shapes, shapes:N, or a .txt/.json/.csv file)`, 'prompts');
}

/**
 * Prompts from a file: `.txt` one per line (blank lines and `#` comments skipped), `.json` an
 * array of strings or of objects with a `prompt` key, `.csv` the `prompt` column (or the first
 * column when no header names one).
 */
export function readPromptFile(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new ConfigError('PROMPT_FILE', `cannot read prompt file ${file}`, 'prompts');
  }
  const ext = extname(file).toLowerCase();
  let prompts: string[];
  if (ext === '.json') prompts = fromJson(text, file);
  else if (ext === '.csv') prompts = fromCsv(text, file);
  else prompts = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  if (!prompts.length) throw new ModelFormatError('PROMPT_FILE', 'no prompts in the file', { file });
  return prompts;
}

function fromJson(text: string, file: string): string[] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ModelFormatError('PROMPT_FILE', `not JSON: ${(e as Error).message}`, { file });
  }
  if (!Array.isArray(v)) throw new ModelFormatError('PROMPT_FILE', 'a JSON prompt file is an array of strings or of { "prompt": ... } objects', { file });
  return v.map((e, i) => {
    const p = typeof e === 'string' ? e : e && typeof e === 'object' ? (e as Record<string, unknown>).prompt : undefined;
    if (typeof p !== 'string' || !p.trim()) throw new ModelFormatError('PROMPT_FILE', `entry ${i} is not a prompt string or an object with a "prompt" string`, { file });
    return p.trim();
  });
}

/** RFC 4180 rows: quoted fields may hold commas, newlines and doubled quotes. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') { row.push(field); field = ''; }
    else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(field); rows.push(row); row = []; field = '';
    } else field += ch;
  }
  if (field || row.length) { row.push(field); rows.push(row); }
  return rows.filter((r) => r.some((f) => f.trim()));
}

function fromCsv(text: string, file: string): string[] {
  const rows = parseCsv(text);
  if (!rows.length) return [];
  const col = rows[0]!.findIndex((h) => h.trim().toLowerCase() === 'prompt');
  const body = col >= 0 ? rows.slice(1) : rows;
  const c = Math.max(col, 0);
  return body.map((r, i) => {
    const p = (r[c] ?? '').trim();
    if (!p) throw new ModelFormatError('PROMPT_FILE', `row ${i + (col >= 0 ? 2 : 1)} has no prompt`, { file });
    return p;
  });
}
