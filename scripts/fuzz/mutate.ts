// Seeded mutations of real captures, for fuzzing the text parsers. Deterministic: the same
// (seed, index) always gives the same input, so a failure is reproduced from two numbers.

/** mulberry32: small, fast, good enough to pick mutations. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const EXTREME_NUMBERS = ['0', '-1', '4294967295', '4294967296', '18446744073709551615', '99999999999999999999999', '0x', 'NaN', ''];
const NOISE_LINES = [
  '', ' ', '\r', '\u00a0\u00a0', '[   12.345678] kmemleak: ', '<3>[ 1.0][  T1] kmemleak:   backtrace:', '4,1,2,-;kmemleak: ',
  'unreferenced object 0x (size ):', 'unreferenced object (percpu) 0xffffffff (size 18446744073709551616):',
  '  comm "", pid , jiffies ', '  hex dump (first 4294967296 bytes on cpu 99999):', '  backtrace (crc ):',
  '    [<>] +0x/0x', '    [<(____ptrval____)>]', '    0xffffffffffffffff', '    ffffffff', '    a+0x1/0x2 [', '    a+0x1/0x2 [m] [inline] x:1',
  '\u0000\u0001\u0002', '\ufffd\ufffd', 'BUG: memory leak', '[section rc=0]',
];

export interface Mutation {
  name: string;
  apply(text: string, r: () => number, corpus: readonly string[]): string;
}

const pick = <T>(xs: readonly T[], r: () => number): T => xs[Math.floor(r() * xs.length)];
const pos = (s: string, r: () => number): number => Math.floor(r() * (s.length + 1));

export const MUTATIONS: readonly Mutation[] = [
  { name: 'flip-char', apply: (s, r) => { const p = pos(s, r); return s.slice(0, p) + String.fromCharCode(Math.floor(r() * 256)) + s.slice(p + 1); } },
  { name: 'delete-range', apply: (s, r) => { const a = pos(s, r); const b = Math.min(s.length, a + Math.floor(r() * 400)); return s.slice(0, a) + s.slice(b); } },
  { name: 'duplicate-range', apply: (s, r) => { const a = pos(s, r); const b = Math.min(s.length, a + Math.floor(r() * 800)); const p = pos(s, r); return s.slice(0, p) + s.slice(a, b) + s.slice(p); } },
  { name: 'truncate', apply: (s, r) => s.slice(0, pos(s, r)) },
  { name: 'binary-insert', apply: (s, r) => { const p = pos(s, r); let g = ''; for (let i = Math.floor(r() * 200); i > 0; i--) g += String.fromCharCode(Math.floor(r() * 65536)); return s.slice(0, p) + g + s.slice(p); } },
  { name: 'swap-lines', apply: (s, r) => { const l = s.split('\n'); const i = Math.floor(r() * l.length); const j = Math.floor(r() * l.length); [l[i], l[j]] = [l[j], l[i]]; return l.join('\n'); } },
  { name: 'drop-line', apply: (s, r) => { const l = s.split('\n'); l.splice(Math.floor(r() * l.length), 1); return l.join('\n'); } },
  { name: 'noise-line', apply: (s, r) => { const l = s.split('\n'); l.splice(Math.floor(r() * (l.length + 1)), 0, pick(NOISE_LINES, r)); return l.join('\n'); } },
  { name: 'extreme-number', apply: (s, r) => { let k = 0; const want = Math.floor(r() * 20); return s.replace(/\d+/g, (m) => (k++ === want ? pick(EXTREME_NUMBERS, r) : m)); } },
  { name: 'crlf', apply: (s) => s.replace(/\n/g, '\r\n') },
  { name: 'strip-indent', apply: (s) => s.replace(/^ +/gm, '') },
  { name: 'long-line', apply: (s, r) => { const p = pos(s, r); return s.slice(0, p) + 'A'.repeat(1000 + Math.floor(r() * 200_000)) + s.slice(p); } },
  { name: 'dmesg-prefix', apply: (s, r) => s.split('\n').map((l) => (r() < 0.5 ? `[ ${(r() * 1000).toFixed(6)}] kmemleak: ${l}` : l)).join('\n') },
  { name: 'splice-other', apply: (s, r, corpus) => { const o = pick(corpus, r); const a = pos(o, r); const p = pos(s, r); return s.slice(0, p) + o.slice(a, a + Math.floor(r() * 2000)) + s.slice(p); } },
  { name: 'repeat-records', apply: (s, r) => s.repeat(2 + Math.floor(r() * 8)) },
];

/** The i-th fuzz input of a run seeded with `seed`: a corpus file with 1 to 4 mutations. */
export function mutatedInput(corpus: readonly string[], seed: number, i: number): { text: string; base: number; ops: string[] } {
  const r = rng((seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0);
  const base = Math.floor(r() * corpus.length);
  let text = corpus[base];
  const ops: string[] = [];
  for (let k = 1 + Math.floor(r() * 4); k > 0; k--) {
    const m = pick(MUTATIONS, r);
    text = m.apply(text, r, corpus);
    ops.push(m.name);
    if (text.length > 4_000_000) text = text.slice(0, 4_000_000); // keep one input bounded
  }
  return { text, base, ops };
}
