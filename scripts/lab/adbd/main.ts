#!/usr/bin/env node
// Entry point of the lab's device-side adbd. See options.ts for the command line.
import fs from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import type { DaemonContext } from './config.js';
import { FEATURES } from './config.js';
import { Logger } from './log.js';
import { USAGE, UsageError, parseOptions } from './options.js';
import { startServer } from './server.js';

async function main(): Promise<void> {
  let opts;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`adbd: ${err.message}\n\n${USAGE}`);
      process.exit(2);
    }
    throw err;
  }
  if (!opts) {
    process.stdout.write(USAGE);
    return;
  }

  const log = new Logger(opts.logFile);
  const ctx: DaemonContext = {
    config: {
      shell: opts.shell,
      rebootCommand: opts.rebootCommand,
      product: opts.product,
      model: opts.model,
      device: opts.device,
      maxPayload: opts.maxPayload,
      rootProp: opts.rootProp,
    },
    log,
    children: new Set<ChildProcess>(),
  };

  // Last line of defence: a bug in one connection's handling must not stop the daemon serving
  // the others. Every handler already catches its own errors; this only logs what slipped by.
  // (Node already ignores SIGPIPE; a dead stdout/stderr shows up as 'error' events, which are
  // swallowed here so that a daemon whose launcher died neither crashes nor spins.)
  process.stdout.on('error', () => {});
  process.on('uncaughtException', (err) => {
    try {
      log.error('uncaught exception', { err: err.stack ?? String(err) });
    } catch {
      // ignore
    }
  });
  process.on('unhandledRejection', (err) => {
    try {
      log.error('unhandled rejection', { err: String(err) });
    } catch {
      // ignore
    }
  });
  process.on('SIGHUP', () => {}); // keep serving when the launching terminal goes away

  let daemon;
  try {
    daemon = await startServer(ctx, opts.listen, opts.port);
  } catch (err) {
    process.stderr.write(`adbd: cannot listen on ${opts.listen}:${opts.port}: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  if (opts.shellUid !== null) {
    // adbd's drop_privileges(): listen first, then give up root for good.
    try {
      process.setgroups!([opts.shellUid]);
      process.setgid!(opts.shellUid);
      process.setuid!(opts.shellUid);
    } catch (err) {
      process.stderr.write(`adbd: cannot run as uid ${opts.shellUid}: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    }
  }
  if (opts.pidfile) {
    const pidfile = opts.pidfile;
    fs.writeFileSync(pidfile, `${process.pid}\n`);
    process.on('exit', () => fs.rmSync(pidfile, { force: true }));
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { signal });
    const timer = setTimeout(() => process.exit(0), 2000);
    timer.unref();
    void daemon
      .close()
      .then(() => log.close())
      .finally(() => process.exit(0));
  };
  // `root:`/`unroot:` changed service.adb.root: exit, as adbd does when init restarts it.
  ctx.restart = (why: string) => setTimeout(() => stop(why), 200).unref();
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (opts.exitOnStdinEof) {
    process.stdin.on('error', () => stop('stdin error'));
    process.stdin.on('end', () => stop('stdin closed'));
    process.stdin.resume();
  }

  // Announce only now: whoever waits for this line may signal us at once.
  log.info('adbd started', { address: daemon.address, port: daemon.port, shell: opts.shell, features: FEATURES, maxPayload: opts.maxPayload, uid: process.getuid?.() });
  process.stdout.write(`adbd listening on ${daemon.address}:${daemon.port}\n`);
}

void main();
