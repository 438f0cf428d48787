import test from 'node:test';
import assert from 'node:assert/strict';
import { ExitCode, KmlError, ioError } from '../../host/errors.js';
import { parseDuration, parsePositiveInt } from '../../host/commands/context.js';

test('ioError maps ENOSPC to an I/O exit code with a remedy', () => {
  const e = ioError('writing snapshot', Object.assign(new Error('x'), { code: 'ENOSPC' }));
  assert.equal(e.exitCode, ExitCode.IO);
  assert.match(e.message, /no space left/);
  assert.ok(e.hint);
});

test('durations and counts are validated as usage errors', () => {
  assert.equal(parseDuration('--duration', '8h'), 8 * 3600_000);
  assert.equal(parseDuration('--interval', '600'), 600_000);
  assert.throws(() => parseDuration('--duration', 'soon'), (e: unknown) => e instanceof KmlError && e.exitCode === ExitCode.USAGE);
  assert.equal(parsePositiveInt('--count', '3'), 3);
  assert.throws(() => parsePositiveInt('--count', '-1'), KmlError);
  assert.throws(() => parsePositiveInt('--count', '1e3'), KmlError);
});
