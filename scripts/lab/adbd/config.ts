// What the daemon was started with, shared by the transport and the services.
import type { ChildProcess } from 'node:child_process';
import type { Logger } from './log.js';

export interface DaemonConfig {
  /** Shell that runs every command (`sh -c CMD`), like adbd's _PATH_BSHELL. */
  shell: string;
  /** Shell command run by `reboot:`; null = just close the stream (host mode). */
  rebootCommand: string | null;
  product: string;
  model: string;
  device: string;
  /** Largest payload we offer in CNXN; the connection uses min(host's, this). */
  maxPayload: number;
  /** service.adb.root's file on a debuggable build (see --root-prop); null: a production build. */
  rootProp: string | null;
}

/** Transport features we advertise: only what the services implement. */
export const FEATURES = ['shell_v2', 'stat_v2', 'ls_v2', 'fixed_push_mkdir', 'fixed_push_symlink_timestamp'] as const;

export interface DaemonContext {
  config: DaemonConfig;
  log: Logger;
  /** Every child we spawn is registered so that shutdown can hang them up. */
  children: Set<ChildProcess>;
  /** Stop the daemon shortly (the device's init starts it again); set by main. */
  restart?: (why: string) => void;
}

/** `device::ro.product.name=…;ro.product.model=…;ro.product.device=…;features=…` (adb.cpp get_connection_string). */
export function banner(config: DaemonConfig): string {
  return (
    'device::' +
    [`ro.product.name=${config.product}`, `ro.product.model=${config.model}`, `ro.product.device=${config.device}`, `features=${FEATURES.join(',')}`].join(
      ';',
    )
  );
}
