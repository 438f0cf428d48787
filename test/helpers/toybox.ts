// Android's userland on the host: a folder holding only toybox's applets, like a phone's
// /system/bin. With it as PATH, every command a shell runs is toybox's and none falls through to
// GNU coreutils, so the agent script and kml's device commands meet the tools a phone has.
//
// Debian's toybox build lacks a few applets Android's has (tr, dd, expr): a test under this PATH is
// stricter than a phone there, which is the safe side (kml must not depend on them silently).
import { execFileSync } from 'node:child_process';
import { existsSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { tempDirSync } from './tmp.js';

export const TOYBOX = '/usr/bin/toybox';

let bin: string | null | undefined;

/** The applet folder (made once per test process), or null when toybox is not installed. */
export function toyboxBin(): string | null {
  if (bin !== undefined) return bin;
  if (!existsSync(TOYBOX)) return (bin = null);
  const dir = tempDirSync('kml-toybox-bin-');
  for (const app of execFileSync(TOYBOX, { encoding: 'utf8' }).split(/\s+/).filter(Boolean)) symlinkSync(TOYBOX, path.join(dir, app));
  return (bin = dir);
}
