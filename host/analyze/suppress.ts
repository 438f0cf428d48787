// False-positive handling: a built-in, documented list of known kmemleak false-positive classes,
// plus the user's own rules from `--suppress FILE` (JSON). Suppressed leaks are never dropped:
// they go to their own table with counts, bytes and the reason (LSan's "Suppressions used",
// LeakCanary's "Library Leaks" with descriptions).
//
// Two kinds of rule:
// - record rules (default for user rules): every matching record is moved to the suppressed
//   group (fingerprint, rule), whatever the group does over time;
// - group rules (`unlessGrowing: true`, or any rule using `bootTime`): they hide a whole group only
//   when EVERY object of the group matches and the group is not growing. A "false positive" that
//   keeps producing new objects is shown, because that is what a real leak looks like.
//
// User file format (JSON; chosen over YAML because Node reads it without a dependency and the
// store and model are JSON already):
// {
//   "schemaVersion": 1,
//   "skipFrames": ["vendor_alloc_wrapper", "my_*_alloc"],         // optional: more allocator frames
//   "suppressions": [
//     { "id": "qbam-dma", "reason": "BAM descriptors live in DMA-coherent memory kmemleak does not scan",
//       "frames": ["dma_async_device_register", "qbam_*"],         // each glob must match some frame
//       "culprit": "dma_async_*", "comm": "swapper*", "module": "qbam",
//       "size": { "min": 1, "max": 128 }, "objectType": "normal",
//       "bootTime": true, "unlessGrowing": true }
//   ]
// }
// Globs: `*` any run of characters, `?` one character, whole-name match, case-sensitive, over
// normalised frame names (no offsets, no .constprop/.isra/.part/.cold, no _noprof); a frame glob
// also matches the `name [module]` form.
import fs from 'node:fs/promises';
import { ExitCode, KmlError, ioError } from '../errors.js';
import { globToRegExp } from '../kmemleak/fingerprint.js';

export interface SuppressionRule {
  /** 'builtin:<name>' or 'user:<id>'. */
  id: string;
  origin: 'builtin' | 'user';
  reason: string;
  frames?: string[];
  culprit?: string;
  comm?: string;
  module?: string;
  size?: { min?: number; max?: number };
  objectType?: 'normal' | 'percpu' | 'phys';
  /** Only records tagged boot-time match (makes the rule a group rule). */
  bootTime?: boolean;
  /** Group rule: hide only groups that are not growing. */
  unlessGrowing?: boolean;
  /**
   * Built-in only: a group-level condition on what was observed (e.g. every object vanished
   * before the next read). Evaluated at the end, with the per-record match.
   */
  groupCondition?: 'all-vanished';
  /** Where the knowledge comes from (built-ins), for the docs and the report. */
  source?: string;
}

/** What a rule is matched against: one record, described by its stack identity and tags. */
export interface RecordFacts {
  allFrames: string[];
  keyFrames: string[];
  culprit: string;
  module: string | null;
  comm: string | null;
  size: number;
  objectType: 'normal' | 'percpu' | 'phys';
}

/**
 * Built-in known false-positive classes (research/kmemleak-kernel.md §4). All of them are group
 * rules: they never hide a group that keeps growing.
 */
export const BUILTIN_SUPPRESSIONS: readonly SuppressionRule[] = [
  {
    id: 'builtin:boot-time',
    origin: 'builtin',
    reason:
      'Allocated during boot (by swapper, pid 0/1, or within the boot window) and not growing: init-time ' +
      'allocations that are kept for the life of the system, e.g. driver probe data (the seed note\'s ' +
      'qbam_probe/dma_async_device_register example). kmemleak.rst: "some cases in the init_call functions".',
    bootTime: true,
    unlessGrowing: true,
    source: 'Documentation/dev-tools/kmemleak.rst; seed note; research §4.3',
  },
  {
    id: 'builtin:transient',
    origin: 'builtin',
    reason:
      'Reported, then gone from the next read of the same boot (freed or referenced again): a transient ' +
      'report, e.g. an object in a kvfree_rcu() grace period on kernels without the 2023 kmemleak_ignore() ' +
      'fix in kvfree_call_rcu(), or a pointer moved during a scan. Only visible when snapshots are not cleared.',
    groupCondition: 'all-vanished',
    unlessGrowing: true,
    source: 'rcu: kmemleak: Ignore kmemleak false positives when RCU-freeing objects (2023); research §4.3',
  },
  {
    id: 'builtin:xarray-shrink-race',
    origin: 'builtin',
    reason:
      'XArray node reported while the scan raced xas_shrink() moving xa_head; fixed in 2025 ("XArray: fix ' +
      'kmemleak false positive in xas_shrink()", kmemleak_transient_leak). Transient unless it keeps growing.',
    frames: ['xas_alloc'],
    unlessGrowing: true,
    source: 'research §4.3',
  },
  {
    id: 'builtin:percpu-module-alloc-tag',
    origin: 'builtin',
    reason:
      'Percpu allocation made while loading a module on 6.12+ kernels (percpu leak reporting is new there): ' +
      'the alloc_tag counters are referenced only through percpu pointers (fixed by f5769359 ' +
      '"mm/alloc_tag: fix the kmemleak false positive issue in the allocation of the percpu variable tag->counters").',
    objectType: 'percpu',
    frames: ['load_module'],
    unlessGrowing: true,
    source: 'research §4.2, §4.3',
  },
  {
    id: 'builtin:trace-cmdlines',
    origin: 'builtin',
    reason:
      'Tracing saved_cmdlines buffer: referenced only from page-allocator memory kmemleak does not scan ' +
      '(upstream fixed it by telling kmemleak about the pages).',
    frames: ['allocate_cmdlines_buffer'],
    unlessGrowing: true,
    source: 'research §4.2',
  },
];

/** A rule with its globs compiled. Matching is split so the stack part can be cached per stack. */
export interface CompiledRule {
  rule: SuppressionRule;
  groupRule: boolean;
  /** The stack part: frames, culprit, module. */
  matchesStack(f: Pick<RecordFacts, 'allFrames' | 'keyFrames' | 'culprit' | 'module'>): boolean;
  /** The object part: comm, size, object type. */
  matchesObject(f: Pick<RecordFacts, 'comm' | 'size' | 'objectType'>): boolean;
  matches(f: RecordFacts): boolean;
}

export function compileRule(rule: SuppressionRule): CompiledRule {
  const frames = (rule.frames ?? []).map(globToRegExp);
  const culprit = rule.culprit !== undefined ? globToRegExp(rule.culprit) : null;
  const comm = rule.comm !== undefined ? globToRegExp(rule.comm) : null;
  const module = rule.module !== undefined ? globToRegExp(rule.module) : null;
  const min = rule.size?.min ?? 0;
  const max = rule.size?.max ?? Infinity;
  const c: CompiledRule = {
    rule,
    groupRule: rule.unlessGrowing === true || rule.bootTime === true || rule.groupCondition !== undefined,
    matchesStack(f): boolean {
      if (module && !(f.module !== null && module.test(f.module))) return false;
      if (culprit && !culprit.test(f.culprit) && !culprit.test(f.culprit.replace(/ \[[^\]]+\]$/, ''))) return false;
      for (const re of frames) {
        if (!f.allFrames.some((x) => re.test(x)) && !f.keyFrames.some((x) => re.test(x))) return false;
      }
      return true;
    },
    matchesObject(f): boolean {
      if (rule.objectType !== undefined && f.objectType !== rule.objectType) return false;
      if (f.size < min || f.size > max) return false;
      if (comm && !(f.comm !== null && comm.test(f.comm))) return false;
      return true;
    },
    matches(f: RecordFacts): boolean {
      return c.matchesObject(f) && c.matchesStack(f);
    },
  };
  return c;
}

export interface SuppressionConfig {
  rules: SuppressionRule[];
  skipFrames: string[];
}

const RULE_KEYS = new Set(['id', 'reason', 'frames', 'culprit', 'comm', 'module', 'size', 'objectType', 'bootTime', 'unlessGrowing']);

/** Validate a parsed suppression document; errors name the entry and field. */
export function parseSuppressionConfig(doc: unknown, where: string): SuppressionConfig {
  const bad = (msg: string): KmlError =>
    new KmlError(ExitCode.USAGE, `${where}: ${msg}`, { hint: 'see the format at the top of host/analyze/suppress.ts or in the README' });
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw bad('expected a JSON object with a "suppressions" array');
  const o = doc as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!['schemaVersion', 'suppressions', 'skipFrames'].includes(k)) throw bad(`unknown top-level key ${JSON.stringify(k)}`);
  if (o.schemaVersion !== undefined && o.schemaVersion !== 1) throw bad(`schemaVersion ${JSON.stringify(o.schemaVersion)} is not supported (1 is)`);
  const skipFrames = o.skipFrames ?? [];
  if (!Array.isArray(skipFrames) || !skipFrames.every((s) => typeof s === 'string' && s.length > 0)) throw bad('"skipFrames" must be an array of non-empty strings');
  const list = o.suppressions ?? [];
  if (!Array.isArray(list)) throw bad('"suppressions" must be an array');
  const ids = new Set<string>();
  const rules = list.map((e, i): SuppressionRule => {
    const at = `suppressions[${i}]`;
    if (typeof e !== 'object' || e === null || Array.isArray(e)) throw bad(`${at} must be an object`);
    const r = e as Record<string, unknown>;
    for (const k of Object.keys(r)) if (!RULE_KEYS.has(k)) throw bad(`${at}: unknown key ${JSON.stringify(k)}`);
    if (typeof r.reason !== 'string' || !r.reason.trim()) throw bad(`${at}: "reason" is required (say why this is not a leak)`);
    const str = (k: string): string | undefined => {
      if (r[k] === undefined) return undefined;
      if (typeof r[k] !== 'string' || !(r[k] as string).length) throw bad(`${at}: "${k}" must be a non-empty string`);
      return r[k] as string;
    };
    const id = str('id') ?? String(i + 1);
    if (ids.has(id)) throw bad(`${at}: duplicate id ${JSON.stringify(id)}`);
    ids.add(id);
    let frames: string[] | undefined;
    if (r.frames !== undefined) {
      if (!Array.isArray(r.frames) || !r.frames.every((s) => typeof s === 'string' && s.length > 0)) throw bad(`${at}: "frames" must be an array of non-empty strings`);
      frames = r.frames as string[];
    }
    let size: { min?: number; max?: number } | undefined;
    if (r.size !== undefined) {
      const s = r.size as Record<string, unknown>;
      if (typeof s !== 'object' || s === null || Object.keys(s).some((k) => k !== 'min' && k !== 'max')
        || (s.min !== undefined && !(typeof s.min === 'number' && s.min >= 0))
        || (s.max !== undefined && !(typeof s.max === 'number' && s.max >= 0))) {
        throw bad(`${at}: "size" must be {"min": bytes, "max": bytes}`);
      }
      size = { min: s.min as number | undefined, max: s.max as number | undefined };
    }
    if (r.objectType !== undefined && !['normal', 'percpu', 'phys'].includes(r.objectType as string)) throw bad(`${at}: "objectType" must be normal, percpu or phys`);
    for (const k of ['bootTime', 'unlessGrowing']) if (r[k] !== undefined && typeof r[k] !== 'boolean') throw bad(`${at}: "${k}" must be true or false`);
    const rule: SuppressionRule = {
      id: `user:${id}`, origin: 'user', reason: (r.reason as string).trim(),
      frames, culprit: str('culprit'), comm: str('comm'), module: str('module'), size,
      objectType: r.objectType as SuppressionRule['objectType'],
      bootTime: r.bootTime as boolean | undefined, unlessGrowing: r.unlessGrowing as boolean | undefined,
    };
    if (!frames?.length && !rule.culprit && !rule.comm && !rule.module && !size && !rule.objectType && !rule.bootTime) {
      throw bad(`${at}: give at least one matcher (frames, culprit, comm, module, size, objectType, bootTime)`);
    }
    return rule;
  });
  return { rules, skipFrames: skipFrames as string[] };
}

/** Read and validate a user suppression file. */
export async function loadSuppressionFile(file: string): Promise<SuppressionConfig> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    throw ioError(`cannot read suppression file ${file}`, e);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new KmlError(ExitCode.USAGE, `${file}: not valid JSON (${(e as Error).message})`);
  }
  return parseSuppressionConfig(doc, file);
}
