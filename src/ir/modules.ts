/**
 * Module scope of nodes: which module of the source network (`transformer_blocks.3.attn.to_q`)
 * a node computes, and glob selection of nodes by module, so users, quantizers and cachers target
 * modules the same way on graphs we built and on graphs exported by PyTorch or Optimum.
 *
 * Where the module path lives:
 * - Node metadata `pkg.torch.onnx.name_scopes`, the key PyTorch's dynamo exporter
 *   (`torch.onnx.export(dynamo=True)`) writes: the Python `repr` of the cumulative module paths
 *   from the root, then the node's own name: `['', 'transformer_blocks.3',
 *   'transformer_blocks.3.attn', 'transformer_blocks.3.attn.to_q', 'MatMul']`. Our builder writes
 *   it on every node, so our graphs read like dynamo exports to other tools too.
 * - Otherwise the node name, as PyTorch's TorchScript exporter (and so Optimum) writes it:
 *   `/transformer_blocks.3/attn/to_q/MatMul` → `transformer_blocks.3.attn.to_q`; names without
 *   a leading `/` (`/Concat` aside: that is the root) belong to the root module `''`.
 */
import { allNodes, type Graph, type Node } from './graph.js';

/** The node metadata key holding the module scopes (PyTorch dynamo exporter's convention). */
export const NAME_SCOPES_KEY = 'pkg.torch.onnx.name_scopes';

/** Python `repr` of a list of strings, as the dynamo exporter writes `name_scopes`. */
export function formatNameScopes(scopes: readonly string[]): string {
  return `[${scopes.map((s) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`).join(', ')}]`;
}

/**
 * Parses a Python list-of-strings literal (`['', 'a', "b'c"]`); undefined when it is not one,
 * so a malformed entry falls back to the node name rather than failing the whole graph.
 */
export function parseNameScopes(text: string): string[] | undefined {
  const out: string[] = [];
  let i = 0;
  const ws = () => { while (i < text.length && /\s/.test(text[i]!)) i++; };
  ws();
  if (text[i] !== '[') return undefined;
  i++;
  ws();
  if (text[i] === ']') return i + 1 === text.trimEnd().length ? out : undefined;
  for (;;) {
    ws();
    const q = text[i];
    if (q !== "'" && q !== '"') return undefined;
    i++;
    let s = '';
    while (i < text.length && text[i] !== q) {
      if (text[i] === '\\' && i + 1 < text.length) {
        const c = text[i + 1]!;
        s += c === 'n' ? '\n' : c === 't' ? '\t' : c;
        i += 2;
      } else s += text[i++];
    }
    if (i >= text.length) return undefined;
    i++;
    out.push(s);
    ws();
    if (text[i] === ',') { i++; ws(); if (text[i] === ']') break; continue; }
    if (text[i] === ']') break;
    return undefined;
  }
  return i + 1 === text.trimEnd().length ? out : undefined;
}

/**
 * The module path a TorchScript-style node name implies: the `/`-separated scopes before the
 * op's own name, joined with dots (`/down_blocks.0/resnets.1/conv1/Conv` →
 * `down_blocks.0.resnets.1.conv1`). Names that are not scoped (`Constant_12`, `/Concat`,
 * `node_MatMul_3`) give the root, `''`.
 */
export function modulePathFromName(name: string): string {
  if (!name.startsWith('/')) return '';
  const parts = name.split('/').slice(1, -1);
  return parts.filter(Boolean).join('.');
}

/** The module path of a node: its `name_scopes` metadata first, else derived from its name. */
export function modulePath(node: Node): string {
  const meta = node.metadata.get(NAME_SCOPES_KEY);
  if (meta !== undefined) {
    const scopes = parseNameScopes(meta);
    // the last entry is the node's own name; the one before it is its innermost module
    if (scopes) return scopes.length >= 2 ? scopes[scopes.length - 2]! : '';
  }
  return modulePathFromName(node.name);
}

/** Records `path` on `node` as its module (`name_scopes`: every ancestor path, then `leaf`). */
export function setModulePath(node: Node, path: string, leaf = node.name.slice(node.name.lastIndexOf('/') + 1)): void {
  const scopes = [''];
  if (path) {
    const parts = path.split('.');
    // indexed children keep their index with the container (`down_blocks.0`), as in PyTorch,
    // where a ModuleList/Sequential itself never runs and so never opens a scope
    let acc = '';
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      const next = parts[i + 1];
      acc = acc ? `${acc}.${p}` : p;
      if (next !== undefined && /^\d+$/.test(next)) continue;
      scopes.push(acc);
    }
  }
  scopes.push(leaf);
  node.metadata.set(NAME_SCOPES_KEY, formatNameScopes(scopes));
}

/**
 * fnmatch-style glob (Python's `fnmatch.fnmatchcase`, which Pruna applies to module names):
 * `*` matches any run of characters, dots included; `?` one character; `[abc]`, `[a-z]`,
 * `[!abc]` a character class. The whole path must match. Case-sensitive.
 */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      let j = i + 1;
      if (glob[j] === '!') j++;
      if (glob[j] === ']') j++;
      while (j < glob.length && glob[j] !== ']') j++;
      if (j >= glob.length) re += '\\[';
      else {
        let body = glob.slice(i + 1, j).replace(/\\/g, '\\\\');
        if (body.startsWith('!')) body = `^${body.slice(1)}`;
        else if (body.startsWith('^')) body = `\\${body}`;
        re += `[${body}]`;
        i = j;
      }
    } else re += c.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}

/** Whether module `path` matches `glob` (fnmatch semantics; see {@link globToRegExp}). */
export function matchGlob(path: string, glob: string): boolean {
  return globToRegExp(glob).test(path);
}

/** `path` and each module containing it: `a.b.c` → `a.b.c`, `a.b`, `a`. */
export function moduleAncestors(path: string): string[] {
  if (!path) return [''];
  const out: string[] = [];
  for (let p = path; ; p = p.slice(0, p.lastIndexOf('.'))) {
    out.push(p);
    if (!p.includes('.')) break;
  }
  return out;
}

export interface NodeSelection {
  /** globs over module paths; default: every node */
  include?: readonly string[];
  /** globs over module paths; a node matching one is left out even when included */
  exclude?: readonly string[];
  /** also select nodes inside subgraphs (If/Loop bodies); default true */
  subgraphs?: boolean;
}

/**
 * Nodes selected by module globs. A node is in module M when its module path is M or lies
 * inside it (`M.…`), so a glob naming a module selects everything in it:
 * `transformer_blocks.*.attn` selects `/transformer_blocks.3/attn/to_q/MatMul`. With fnmatch's
 * `*` crossing dots, `*norm*` selects every node of any module whose path contains `norm`.
 * Nodes of the root module (path `''`) are matched by `*` only.
 */
/** Metadata key listing, as a JSON array, the module paths a fused node was made from (qkv's `to_qkv`). */
export const FUSED_FROM_KEY = 'smash.fused_from';

/**
 * Every module path a node answers to: its own, and those of the nodes it was fused from, so
 * globs written for `to_q` still reach a fused `to_qkv`.
 */
export function modulePaths(node: Node): string[] {
  const from = node.metadata.get(FUSED_FROM_KEY);
  let fused: string[] = [];
  try {
    const parsed: unknown = from ? JSON.parse(from) : [];
    if (Array.isArray(parsed)) fused = parsed.filter((p): p is string => typeof p === 'string');
  } catch {
    // malformed metadata: the node answers to its own path only
  }
  return [modulePath(node), ...fused];
}

export function selectNodes(graph: Graph, sel: NodeSelection = {}): Node[] {
  const inc = sel.include?.map(globToRegExp);
  const exc = sel.exclude?.map(globToRegExp) ?? [];
  const hit = (res: RegExp[], anc: string[]) => res.some((r) => anc.some((p) => r.test(p)));
  const out: Node[] = [];
  const nodes = sel.subgraphs === false ? graph.nodes() : allNodes(graph);
  for (const n of nodes) {
    const anc = modulePaths(n).flatMap(moduleAncestors);
    if (inc && !hit(inc, anc)) continue;
    if (hit(exc, anc)) continue;
    out.push(n);
  }
  return out;
}
