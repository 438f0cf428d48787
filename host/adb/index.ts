// host/adb: device access for every other part of kml. Import from here.
//
//   const adb = new Adb(resolveAdbEndpoint({ port }));      // 127.0.0.1, -P / ANDROID_ADB_SERVER_PORT
//   await adb.requireOnline(serial);                        // AdbError (ExitCode.DEVICE) with a hint
//   const r = await adb.shell(serial, `cat ${shq(path)}`, { timeoutMs: 10_000 });  // {stdout, stderr, exitCode}
//   const method = await ensureRoot(adb, serial);           // adbd-root | adb-root | su-0 | su-c
//   await adb.shellOk(serial, asRoot(method, 'echo scan > /sys/kernel/debug/kmemleak'));
//   await adb.pullToFile(serial, '/data/local/tmp/kml/x', '/tmp/x.part');           // {bytes, sha256}
export { Adb, DEFAULT_TIMEOUTS, resolveAdbEndpoint, retryTransient } from './client.js';
export type { AdbEndpoint, PullResult, RetryOptions, ShellOptions, ShellResult, WaitOptions } from './client.js';
export { ABSENT, isOnline, parseDeviceList, stateWord } from './device-list.js';
export type { DeviceEntry, DeviceState } from './device-list.js';
export { AdbError, isTransientAdbError, toAdbError } from './errors.js';
export type { AdbErrorKind } from './errors.js';
export { parseTcpSerial, shDisplay, shq, shqJoin, validateSerial } from './quote.js';
export { adbdIsRoot, asRoot, detectRoot, ensureRoot, forgetRootMethod, rememberedRootMethod, rootRemedy, ROOT_METHODS } from './root.js';
export type { RootAttempt, RootInfo, RootMethod, RootOptions } from './root.js';
export type { RemoteEntry, RemoteStat } from './sync-protocol.js';
export { DeviceWatcher } from './watch.js';
export type { DeviceWatcherOptions } from './watch.js';
