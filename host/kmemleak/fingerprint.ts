// Leak identity: normalise a record's backtrace, skip the allocator frames on top, keep the first N
// caller frames (+ module) as the grouping key, and hash it into a short fingerprint (LeakCanary's
// "leak signature" idea; NIPA keys on 5 frames, syzkaller titles on the first non-allocator frame).
//
// Never part of the key: the bracketed pointer (hashed, raw, zeroed: differs per kernel and boot),
// `+0xOFF/0xSIZE` (differs per build), `(age ...)` (changes every read), the `crc` (a checksum of
// the object CONTENTS), comm/pid (one call site serves many tasks).
import { createHash } from 'node:crypto';
import type { KmemleakFrame, KmemleakRecord } from './types.js';

export const DEFAULT_FRAMES_IN_KEY = 5;

// Compiler clones and LTO/CFI decorations: `foo.constprop.0`, `foo.isra.12`, `foo.part.3`,
// `foo.cold`, `foo.llvm.1234` (clang ThinLTO, Android), `foo.cfi_jt` (Android CFI jump tables).
const CLONE_SUFFIX = /(?:\.(?:constprop|isra|part|cold|llvm|lto_priv|cfi_jt|cfi|localalias|clone|specialized)(?:\.\d+)*)+$/;

/** `xas_expand.constprop.0` → `xas_expand`; `kmalloc_trace_noprof` → `kmalloc_trace` (6.10+ alloc profiling). */
export function normaliseSymbol(symbol: string): string {
  let s = symbol.replace(CLONE_SUFFIX, '');
  if (s.endsWith('_noprof')) s = s.slice(0, -'_noprof'.length);
  return s;
}

/**
 * Key text of one frame. Resolved: normalised name plus ` [mod]`. Unresolved (a module already
 * unloaded, or a freed init section): `?+0xNNN`, the address's offset inside its 4 KiB page —
 * module text is page aligned, so that offset is the same for the same build on every boot and
 * at any load address, while the full address is not [derived; see research §2.2].
 */
export function frameKey(f: KmemleakFrame): string {
  if (f.symbol !== null) {
    const n = normaliseSymbol(f.symbol);
    return f.module ? `${n} [${f.module}]` : n;
  }
  const a = f.address ?? '';
  return `?+0x${a.slice(-3).padStart(3, '0')}`;
}

/**
 * Allocator frames skipped at the top of a stack, so the key starts at the code that asked for the
 * memory. Anchored regexes over the NORMALISED name (so `_noprof` and clone suffixes are gone).
 * Narrower than syzkaller's kmemleak skip list (which drops any name containing "alloc", e.g. it
 * titles `htab_map_alloc` leaks after its caller): we keep subsystem functions that allocate and
 * skip only generic allocation APIs and their wrappers. Extend with `extraSkipFrames`.
 */
export const ALLOCATOR_FRAMES: ReadonlyArray<{ re: RegExp; what: string }> = [
  { re: /^kmemleak_/, what: 'kmemleak hooks (kmemleak_alloc, kmemleak_alloc_recursive, ...)' },
  { re: /^_*create_object$/, what: 'kmemleak object creation (old kernels print it)' },
  { re: /^_*k(?:v)?(?:m|z|c)alloc(?:_\w+)?$/, what: 'kmalloc family (kmalloc, __kmalloc, kzalloc, kcalloc, kvmalloc, kmalloc_trace, __kmalloc_cache, kmalloc_node_track_caller, kmalloc_reserve, ...)' },
  { re: /^_*do_kmalloc(?:_node)?$/, what: '__do_kmalloc_node' },
  { re: /^_*kmem_cache_(?:z?alloc|alloc_node|alloc_lru|alloc_bulk|alloc_trace|alloc_node_trace)(?:_node)?$/, what: 'kmem_cache_alloc family' },
  { re: /^_*kmem_cache_alloc/, what: '__kmem_cache_alloc_node and other slab entry points' },
  { re: /^_*(?:slab_alloc|slab_alloc_node|slab_post_alloc_hook|slab_pre_alloc_hook|memcg_slab_post_alloc_hook|_slab_alloc|allocate_slab|new_slab)$/, what: 'SLUB internals' },
  { re: /^_*krealloc(?:_array)?$/, what: 'krealloc' },
  { re: /^_*v(?:m|z)alloc(?:_\w+)?$/, what: 'vmalloc family (vmalloc, vzalloc, __vmalloc_node, __vmalloc_node_range, vmalloc_user, ...)' },
  { re: /^_*(?:get_vm_area(?:_node|_caller)?|alloc_vmap_area)$/, what: 'vmalloc area bookkeeping' },
  { re: /^_*kvrealloc$/, what: 'kvrealloc' },
  { re: /^(?:devm_)?(?:kstrdup|kstrndup|kstrdup_const|kmemdup|kmemdup_nul|kmemdup_array|kvmemdup|kasprintf|kvasprintf|kvasprintf_const|kvasprintf_mod)$/, what: 'string/memory duplication helpers' },
  { re: /^(?:memdup_user|memdup_user_nul|vmemdup_user|strndup_user|memdup_array_user)$/, what: 'user-copy duplication helpers' },
  { re: /^(?:devm_kmalloc|devm_kzalloc|devm_kcalloc|devm_kmalloc_array|devm_krealloc|_*devres_alloc(?:_node)?|alloc_dr)$/, what: 'devres allocation' },
  { re: /^_*(?:alloc_percpu|alloc_percpu_gfp|pcpu_alloc|pcpu_mem_zalloc|pcpu_create_chunk|pcpu_alloc_area|alloc_reserved_percpu)$/, what: 'percpu allocator' },
  { re: /^_*(?:alloc_pages|alloc_pages_node|get_free_pages|get_zeroed_page|folio_alloc|alloc_frozen_pages|alloc_pages_exact)(?:_node|_nodemask|_mpol)*$/, what: 'page allocator (kmemleak tracks it only when annotated)' },
  { re: /^(?:mempool_alloc|mempool_alloc_slab|mempool_kmalloc|mempool_alloc_pages|mempool_init_node|mempool_create_node|mempool_create)$/, what: 'mempool' },
  { re: /^(?:kobject_set_name_vargs|kobject_set_name)$/, what: 'kobject name strings (kvasprintf under the hood)' },
  { re: /^(?:idr_get_free|idr_alloc_u32|idr_alloc|idr_alloc_cyclic|ida_alloc_range|ida_alloc|radix_tree_node_alloc|xas_alloc|xas_create|xas_expand|xas_store|_*xa_store|_*xa_alloc|xa_alloc_cyclic)$/, what: 'IDR/IDA/XArray internal nodes (key on the user of the index)' },
  { re: /^(?:_*alloc_skb|alloc_skb_with_frags|_*netdev_alloc_skb|_*napi_alloc_skb|sock_alloc_send_pskb|kmalloc_reserve|dev_alloc_skb)$/, what: 'socket buffer allocation' },
  { re: /^(?:dma_pool_alloc|pool_alloc_page)$/, what: 'DMA pool' },
];

/** Compile `*`/`?` globs into anchored regexes (the suppression file uses the same syntax). */
export function globToRegExp(glob: string): RegExp {
  const re = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`);
}

export interface FingerprintOptions {
  framesInKey?: number;
  /** Extra allocator frames to skip, as globs over normalised names. */
  extraSkipFrames?: string[];
}

export interface StackIdentity {
  fingerprint: string;
  /** frames.join(' < ') — what the fingerprint hashes, with the module. */
  key: string;
  title: string;
  culprit: string;
  frames: string[];
  module: string | null;
  /** Normalised names of ALL frames (allocator ones included), for suppression matching. */
  allFrames: string[];
  /** Free slot for a caller's per-stack memo (the analysis caches rule matches here). */
  memo?: unknown;
}

/** Bound on cached stacks; the cache starts over past it (pathological inputs only). */
const MAX_CACHED_STACKS = 50_000;

export class Fingerprinter {
  private readonly n: number;
  private readonly extra: RegExp[];
  private readonly cache = new Map<string, StackIdentity>();
  private readonly skipCache = new Map<string, boolean>();

  constructor(opts: FingerprintOptions = {}) {
    this.n = Math.max(1, opts.framesInKey ?? DEFAULT_FRAMES_IN_KEY);
    this.extra = (opts.extraSkipFrames ?? []).map(globToRegExp);
  }

  isAllocatorFrame(normalised: string): boolean {
    let v = this.skipCache.get(normalised);
    if (v === undefined) {
      v = ALLOCATOR_FRAMES.some((a) => a.re.test(normalised)) || this.extra.some((r) => r.test(normalised));
      if (this.skipCache.size > 100_000) this.skipCache.clear();
      this.skipCache.set(normalised, v);
    }
    return v;
  }

  /**
   * Identity of a record's stack, cached by the printed stack (symbols/addresses, modules, inline
   * marks; no offsets), so a repeated stack costs one string build and one Map lookup. (A trie
   * walked frame by frame allocates less but measured 2-3x slower: one hash per frame.)
   */
  identify(r: KmemleakRecord): StackIdentity {
    let raw = '';
    for (const f of r.frames) {
      raw += f.symbol ?? f.address;
      if (f.module !== null) raw += '[' + f.module;
      raw += f.inline ? '^\n' : '\n';
    }
    let id = this.cache.get(raw);
    if (id === undefined) {
      id = this.compute(r.frames);
      if (this.cache.size >= MAX_CACHED_STACKS) this.cache.clear();
      this.cache.set(raw, id);
    }
    return id;
  }

  /**
   * Identity of a stack given by its printed text (ParsedRecord.stackKey(): the frame lines as
   * printed, pointers and offsets included), cached by that text; `frames` is called only on a
   * cache miss. The printed text determines the frames, so the identity is the one identify() gives.
   */
  identifyStack(printed: string, frames: () => KmemleakFrame[]): StackIdentity {
    let id = this.printedCache.get(printed);
    if (id === undefined) {
      id = this.compute(frames());
      if (this.printedCache.size >= MAX_CACHED_STACKS) this.printedCache.clear();
      this.printedCache.set(printed, id);
    }
    return id;
  }

  private readonly printedCache = new Map<string, StackIdentity>();

  private compute(frames: KmemleakFrame[]): StackIdentity {
    const all: string[] = [];
    const keyFrames: string[] = [];
    let module: string | null = null;
    let started = false;
    let firstResolvedAfterCulprit: string | null = null;
    for (const f of frames) {
      const k = frameKey(f);
      all.push(f.symbol !== null ? normaliseSymbol(f.symbol) : k);
      // Inline frames exist only in symbolized logs; the kernel never prints them, so they are
      // left out of the key to give the same fingerprint to raw and symbolized copies.
      if (f.inline) continue;
      if (!started) {
        if (f.symbol !== null && this.isAllocatorFrame(normaliseSymbol(f.symbol))) continue;
        started = true;
      }
      if (keyFrames.length < this.n) {
        if (keyFrames[keyFrames.length - 1] === k) continue; // a symbolized inline copy of the same function
        keyFrames.push(k);
        if (module === null && f.module) module = f.module;
        if (keyFrames.length > 1 && firstResolvedAfterCulprit === null && f.symbol !== null) firstResolvedAfterCulprit = k;
      }
    }
    if (keyFrames.length === 0 && frames.length > 0) {
      // Every frame is an allocator frame (a truncated trace): key on what is there.
      for (const f of frames) {
        if (f.inline) continue;
        const k = frameKey(f);
        if (keyFrames[keyFrames.length - 1] !== k && keyFrames.length < this.n) keyFrames.push(k);
      }
    }
    let culprit: string;
    let title: string;
    if (keyFrames.length === 0) {
      culprit = '<no backtrace>';
      keyFrames.push(culprit);
      title = 'memory leak in <unknown> (no backtrace)';
    } else {
      culprit = keyFrames[0];
      title = culprit.startsWith('?')
        ? `memory leak in ${culprit} (unresolved${firstResolvedAfterCulprit ? `, called from ${firstResolvedAfterCulprit}` : ''})`
        : `memory leak in ${culprit}`;
    }
    const key = keyFrames.join(' < ');
    const fingerprint = createHash('sha1').update(`${key}|${module ?? ''}`).digest('hex').slice(0, 12);
    return { fingerprint, key, title, culprit, frames: keyFrames, module, allFrames: all };
  }
}

/** The printed form of a stack for display: `sym+0xoff/0xsize [mod]` or the bare address. */
export function displayStack(frames: KmemleakFrame[]): string[] {
  return frames.map((f) => {
    if (f.symbol === null) return `0x${f.address}`;
    const off = f.offset !== null && f.size !== null ? `+0x${f.offset.toString(16)}/0x${f.size.toString(16)}` : '';
    return `${f.symbol}${off}${f.module ? ` [${f.module}]` : ''}${f.source ? ` ${f.source}` : ''}${f.inline ? ' [inline]' : ''}`;
  });
}
