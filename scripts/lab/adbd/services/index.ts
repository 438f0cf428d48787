// Service name → service. Returns null for names we do not implement (the host then gets CLSE).
import type { DaemonContext } from '../config.js';
import type { AdbStream, Service } from '../stream.js';
import { RawShellService } from './shell-raw.js';
import { ShellV2Service } from './shell-v2.js';
import { SyncService } from './sync.js';
import { RebootService, RootService } from './admin.js';

export interface ServiceFactory {
  /** Called right after OKAY went out. */
  start(): Service;
}

interface ShellArgs {
  v2: boolean;
  pty: boolean;
  raw: boolean;
  term?: string;
}

/** `shell,v2,TERM=xterm,raw:CMD` → args + CMD (daemon/services.cpp ShellService). */
function parseShell(name: string): { args: ShellArgs; command: string } | null {
  const colon = name.indexOf(':');
  if (colon < 0) return null;
  const head = name.slice(0, colon);
  const command = name.slice(colon + 1);
  const args: ShellArgs = { v2: false, pty: false, raw: false };
  const parts = head.split(',');
  if (parts[0] !== 'shell') return null;
  for (const a of parts.slice(1)) {
    if (a === 'v2') args.v2 = true;
    else if (a === 'pty') args.pty = true;
    else if (a === 'raw') args.raw = true;
    else if (a.startsWith('TERM=')) args.term = a.slice(5);
    // unknown args are ignored, as adbd does
  }
  return { args, command };
}

export function openService(name: string, stream: AdbStream, ctx: DaemonContext): ServiceFactory | null {
  if (name.startsWith('shell:') || name.startsWith('shell,')) {
    const parsed = parseShell(name);
    if (!parsed) return null;
    const { args, command } = parsed;
    // adbd: a pty when asked for, or by default when there is no command; otherwise raw.
    // A cooked pty is emulated (CookedTty); a raw one is just the pipes.
    const tty = args.pty || (command === '' && !args.raw);
    const spec = { command, interactive: tty && command === '', term: args.term, tty };
    if (args.v2) return { start: () => new ShellV2Service(stream, ctx, spec) };
    return { start: () => new RawShellService(stream, ctx, spec) };
  }
  if (name.startsWith('exec:')) {
    const command = name.slice('exec:'.length);
    return { start: () => new RawShellService(stream, ctx, { command, interactive: false, tty: false }) };
  }
  if (name === 'sync:') return { start: () => new SyncService(stream, ctx) };
  if (name === 'root:' || name === 'unroot:') return { start: () => new RootService(stream, ctx, name === 'root:') };
  if (name === 'reboot:' || name.startsWith('reboot:')) {
    return { start: () => new RebootService(stream, ctx, name.slice('reboot:'.length)) };
  }
  return null;
}
