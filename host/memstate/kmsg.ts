// Kernel-log events a memory verdict needs: OOM-killer runs and kills, low-memory-killer kills
// (in-kernel lowmemorykiller and userspace lmkd), page allocation failures, the kernel's own
// "Unreclaimable slab info:" verdict, and kmemleak's dmesg lines (new leaks, disabled, errors).
// Accepts dmesg ("[  12.345678] ..."), /dev/kmsg ("6,2302,533604004,-;..."), "<6>" console
// prefixes and logcat threadtime/brief lines; unrelated lines are counted as ignored, binary or
// oversized ones as unparsed. Formats: mm/oom_kill.c, drivers/staging/android/lowmemorykiller.c,
// AOSP lmkd.cpp, mm/kmemleak.c (see shared/research/landscape.md §2.11-2.12).
import { type LineInput, type Unparsed, isSane, linesOf, newUnparsed, noteUnparsed } from './lines.js';

export type KernelEventKind =
  | 'oom-invoked'       // "<comm> invoked oom-killer: gfp_mask=..., order=N"
  | 'oom-kill'          // "Out of memory: Killed process N (comm) ..." / "oom-kill:constraint=..."
  | 'oom-reaped'        // "oom_reaper: reaped process N (comm), now anon-rss:..."
  | 'unreclaimable-slab'// "Unreclaimable slab info:" — unreclaimable slab exceeded all LRU pages
  | 'alloc-failure'     // "<comm>: page allocation failure: order:N, mode:..."
  | 'lmk-kill'          // lowmemorykiller (kernel) or lmkd (userspace) kill
  | 'kmemleak-new'      // "kmemleak: N new suspected memory leaks"
  | 'kmemleak-disabled' // "kmemleak: Kernel memory leak detector disabled"
  | 'kmemleak-error';   // pool empty, early log exceeded, cannot allocate object, ...

export interface KernelEvent {
  kind: KernelEventKind;
  /** Seconds since boot from the log prefix, when the line had one. */
  uptimeS?: number;
  /** 1-based line number in the input. */
  line: number;
  /** The message without its log prefix, trimmed to 300 chars. */
  text: string;
  pid?: number;
  comm?: string;
  /** Allocation order (oom-invoked, alloc-failure). */
  order?: number;
  gfpMask?: string;
  /** oom_score_adj (OOM) or adj (LMK) of the victim. */
  adj?: number;
  /** Memory freed by the kill in kB: anon+file+shmem rss (OOM) or "to free N kB" (LMK). */
  freedKb?: number;
  anonRssKb?: number;
  /** "Memory cgroup out of memory" or constraint=CONSTRAINT_MEMCG: not a system-wide shortage. */
  memcg?: boolean;
  constraint?: string;
  source?: 'kernel' | 'lmkd';
  reason?: string;
  /** kmemleak-new: number of new suspected leaks. */
  count?: number;
  /** unreclaimable-slab: the largest caches the kernel listed (name, used kB). */
  caches?: { name: string; usedKb: number }[];
}

export interface KernelLog {
  events: KernelEvent[];
  /** Lines with a recognisable message that is not a memory event. */
  ignored: number;
  unparsed: Unparsed;
}

const DMESG = /^(?:<\d+>)?\[\s*(\d+\.\d+)\]\s?(.*)$/;
const DEVKMSG = /^\d+,\d+,(\d+),[^;]*;(.*)$/;
const CONSOLE = /^<\d+>(.*)$/;
const LOGCAT_THREADTIME = /^\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+[VDIWEFA]\s+([^:]*?)\s*:\s?(.*)$/;
const LOGCAT_BRIEF = /^[VDIWEFA]\/([^(]+?)\s*\(\s*\d+\):\s?(.*)$/;

const OOM_INVOKED = /^(.+?) invoked oom-killer: gfp_mask=(0x[0-9a-fA-F]+)(?:\([^)]*\))?,.*?order=(-?\d+)(?:.*?oom_score_adj=(-?\d+))?/;
const OOM_KILLED = /^(?:(Memory cgroup out of memory|Out of memory)(?: \(oom_kill_allocating_task\))?: )?Killed process (\d+) \((.*?)\)(.*)$/;
const OOM_CONSTRAINT = /^oom-kill:constraint=([A-Z_]+),.*?task=(.*?),pid=(\d+),uid=(\d+)/;
const OOM_REAPED = /^oom_reaper: reaped process (\d+) \((.*?)\), now anon-rss:(\d+)kB/;
const ALLOC_FAIL = /^(.+?): page allocation failure: order:(\d+), mode:(0x[0-9a-fA-F]+)/;
const LMK_KERNEL = /^(?:lowmemorykiller|LMK|lowmem_shrink):?\s*Killing '(.*?)' \((\d+)\)(.*)$/;
const LMKD = /^(?:lowmemorykiller:\s*)?Kill(?:ing)? '(.*?)' \((\d+)\), uid (\d+), oom_(?:score_)?adj (-?\d+) to free (\d+)kB(?: rss)?(?:, (\d+)kB swap)?(?:; reason: (.*))?$/;
const KMEMLEAK = /^kmemleak: (.*)$/;
const UNRECLAIMABLE = /^Unreclaimable slab info:\s*$/;
const SLAB_ROW = /^(\S+)\s+(\d+)KB\s+(\d+)KB\s*$/;

interface Message {
  uptimeS?: number;
  tag?: string;
  text: string;
}

function stripPrefix(line: string): Message | undefined {
  let m = DMESG.exec(line);
  if (m) return { uptimeS: Number(m[1]), text: m[2] };
  m = DEVKMSG.exec(line);
  if (m) return { uptimeS: Number(m[1]) / 1e6, text: m[2] };
  m = LOGCAT_THREADTIME.exec(line) ?? LOGCAT_BRIEF.exec(line);
  if (m) return { tag: m[1].trim(), text: m[2] };
  m = CONSOLE.exec(line);
  if (m) return { text: m[1] };
  return { text: line };
}

function kb(text: string, field: string): number | undefined {
  const m = new RegExp(`${field}:(\\d+)kB`).exec(text);
  return m ? Number(m[1]) : undefined;
}

export function parseKernelLog(input: LineInput): KernelLog {
  const events: KernelEvent[] = [];
  const unparsed = newUnparsed();
  let ignored = 0;
  let lineNo = 0;
  // Multi-line messages: a kernel LMK kill continues on the next lines; the slab table follows its title.
  let lmkOpen: KernelEvent | undefined;
  let lmkLinesLeft = 0;
  let slabOpen: KernelEvent | undefined;

  const handle = (msg: Message, n: number): boolean => {
    const text = msg.text.trim();
    const base = (kind: KernelEventKind): KernelEvent => ({ kind, line: n, text: text.slice(0, 300), ...(msg.uptimeS !== undefined ? { uptimeS: msg.uptimeS } : {}) });

    if (lmkOpen && lmkLinesLeft > 0) {
      lmkLinesLeft--;
      let used = false;
      const free = /to free (\d+)kB/.exec(text);
      if (free) { lmkOpen.freedKb = Number(free[1]); used = true; }
      const adj = /(?:^|\s)(?:adj|oom_score_adj|score_adj) (-?\d+)/.exec(text);
      if (adj && lmkOpen.adj === undefined) { lmkOpen.adj = Number(adj[1]); used = true; }
      const cache = /cache (\d+)kB is below limit (\d+)kB/.exec(text);
      if (cache) { lmkOpen.reason = `cache ${cache[1]}kB below limit ${cache[2]}kB`; used = true; }
      if (/Free memory is -?\d+kB above reserved/.test(text)) used = true;
      if (used) return true;
      lmkOpen = undefined;
    }
    if (slabOpen) {
      if (/^Name\s+Used\s+Total\s*$/.test(text)) return true;
      const row = SLAB_ROW.exec(text);
      if (row) {
        if ((slabOpen.caches ??= []).length < 10) slabOpen.caches.push({ name: row[1], usedKb: Number(row[2]) });
        return true;
      }
      slabOpen = undefined;
    }

    let m: RegExpExecArray | null;
    if ((m = OOM_INVOKED.exec(text))) {
      events.push({ ...base('oom-invoked'), comm: m[1], gfpMask: m[2], order: Number(m[3]), ...(m[4] !== undefined ? { adj: Number(m[4]) } : {}) });
      return true;
    }
    if ((m = OOM_CONSTRAINT.exec(text))) {
      events.push({ ...base('oom-kill'), comm: m[2], pid: Number(m[3]), constraint: m[1], memcg: m[1] === 'CONSTRAINT_MEMCG' });
      return true;
    }
    if ((m = OOM_KILLED.exec(text))) {
      const pid = Number(m[2]);
      const tail = m[4];
      const anon = kb(tail, 'anon-rss');
      const file = kb(tail, 'file-rss');
      const shmem = kb(tail, 'shmem-rss');
      const adj = /oom_score_adj:(-?\d+)/.exec(tail);
      const fields: Partial<KernelEvent> = {
        pid, comm: m[3],
        ...(anon !== undefined ? { anonRssKb: anon, freedKb: anon + (file ?? 0) + (shmem ?? 0) } : {}),
        ...(adj ? { adj: Number(adj[1]) } : {}),
        ...(m[1] === 'Memory cgroup out of memory' ? { memcg: true } : {}),
      };
      // The kernel prints "oom-kill:constraint=..." just before "Killed process": one kill, one event.
      const prev = events[events.length - 1];
      if (prev && prev.kind === 'oom-kill' && prev.pid === pid && prev.freedKb === undefined) {
        Object.assign(prev, fields, { text: text.slice(0, 300), line: n }, msg.uptimeS !== undefined ? { uptimeS: msg.uptimeS } : {});
        if (prev.constraint && prev.memcg === undefined) prev.memcg = prev.constraint === 'CONSTRAINT_MEMCG';
      } else {
        events.push({ ...base('oom-kill'), ...fields });
      }
      return true;
    }
    if ((m = OOM_REAPED.exec(text))) {
      events.push({ ...base('oom-reaped'), pid: Number(m[1]), comm: m[2], anonRssKb: Number(m[3]) });
      return true;
    }
    if (UNRECLAIMABLE.test(text)) {
      slabOpen = base('unreclaimable-slab');
      events.push(slabOpen);
      return true;
    }
    if ((m = ALLOC_FAIL.exec(text))) {
      events.push({ ...base('alloc-failure'), comm: m[1], order: Number(m[2]), gfpMask: m[3] });
      return true;
    }
    if ((m = LMKD.exec(text))) {
      events.push({
        ...base('lmk-kill'), source: 'lmkd', comm: m[1], pid: Number(m[2]), adj: Number(m[4]), freedKb: Number(m[5]),
        ...(m[7] !== undefined ? { reason: m[7].trim() } : {}),
      });
      return true;
    }
    if ((m = LMK_KERNEL.exec(text))) {
      lmkOpen = { ...base('lmk-kill'), source: 'kernel', comm: m[1], pid: Number(m[2]) };
      events.push(lmkOpen);
      lmkLinesLeft = 4;
      const tail = m[3];
      const adj = /(?:adj|score_adj) (-?\d+)/.exec(tail);
      if (adj) lmkOpen.adj = Number(adj[1]);
      const free = /to free (\d+)kB/.exec(tail);
      if (free) lmkOpen.freedKb = Number(free[1]);
      return true;
    }
    if (msg.tag === 'lowmemorykiller' && /^Kill /.test(text)) {
      // lmkd wording we do not know in detail yet: still a kill on the timeline.
      const q = /'(.*?)' \((\d+)\)/.exec(text);
      events.push({ ...base('lmk-kill'), source: 'lmkd', ...(q ? { comm: q[1], pid: Number(q[2]) } : {}) });
      return true;
    }
    if ((m = KMEMLEAK.exec(text))) {
      const body = m[1];
      const nl = /^(\d+) new suspected memory leaks/.exec(body);
      if (nl) { events.push({ ...base('kmemleak-new'), count: Number(nl[1]) }); return true; }
      if (/^Kernel memory leak detector disabled/.test(body)) { events.push(base('kmemleak-disabled')); return true; }
      if (/^(Memory pool empty|Early log buffer exceeded|Cannot allocate a kmemleak_object|Cannot insert 0x|Failed to create the scan thread)/.test(body)) {
        events.push(base('kmemleak-error'));
        return true;
      }
      return false;
    }
    return false;
  };

  for (const raw of linesOf(input)) {
    lineNo++;
    if (raw.trim() === '') continue;
    if (!isSane(raw)) { noteUnparsed(unparsed, raw); continue; }
    const msg = stripPrefix(raw);
    if (!msg) { noteUnparsed(unparsed, raw); continue; }
    // /dev/kmsg keeps a multi-line message in one record with "\x0a" escapes.
    const parts = msg.text.includes('\\x0a') ? msg.text.split('\\x0a') : [msg.text];
    let any = false;
    for (const part of parts) any = handle({ ...msg, text: part }, lineNo) || any;
    if (!any) ignored++;
  }
  return { events, ignored, unparsed };
}

/** Kills that free memory system-wide: LMK kills and OOM kills outside a memory cgroup. */
export function isSystemKill(e: KernelEvent): boolean {
  return e.kind === 'lmk-kill' || (e.kind === 'oom-kill' && !e.memcg);
}
