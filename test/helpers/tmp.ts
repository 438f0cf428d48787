// Temporary folders for tests, removed when the test process exits (node --test runs each test
// file in a process of its own). KML_KEEP_TMP=1 keeps them, to look at after a failure.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const made: string[] = [];
process.on('exit', () => {
  if (process.env.KML_KEEP_TMP === '1') return;
  for (const d of made) {
    try { fs.rmSync(d, { recursive: true, force: true }); } catch { /* best effort: the OS cleans /tmp eventually */ }
  }
});

/** A new empty folder under the OS temp dir, named `<prefix>XXXXXX`. */
export function tempDirSync(prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(d);
  return d;
}

export async function tempDir(prefix: string): Promise<string> {
  return tempDirSync(prefix);
}
