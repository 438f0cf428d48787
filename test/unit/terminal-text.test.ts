// Device text printed for a human: escape sequences (an OSC retitle, a screen clear, C1 CSI) never
// reach the terminal, in error lines, the status view and the readable log lines.
import test from 'node:test';
import assert from 'node:assert/strict';
import { terminalSafe } from '../../host/terminal.js';
import { formatLogLine } from '../../host/log.js';
import { renderStatus } from '../../host/commands/collect.js';

// What a hostile device can put in agent.log, a prop or a comm name.
const HOSTILE = 'ok\x1b]0;PWNED\x07\x1b[2J\x9b31m\x00\r\x7fend';

test('control characters become ?, tab and newline stay, printable Unicode stays', () => {
  assert.equal(terminalSafe(HOSTILE), 'ok?]0;PWNED??[2J?31m???end');
  assert.equal(terminalSafe('a\tb\nc — ü 漢'), 'a\tb\nc — ü 漢');
});

test('readable log line: message and values from the device are made safe', () => {
  const line = formatLogLine({ level: 50, time: 0, msg: `agent.log ends with ${HOSTILE}`, serial: 'x\x1b[1m', tail: HOSTILE });
  assert.doesNotMatch(line, /[\x00-\x08\x0b-\x1f\x7f-\x9f]/);
  assert.match(line, /ERROR agent\.log ends with ok\?\]0;PWNED/);
  assert.match(line, /serial=x\?\[1m/);
});

test('kml status view: heartbeat error words and run messages from the device are made safe', () => {
  const text = terminalSafe(renderStatus({
    serial: 'emulator-5554',
    collector: { running: false },
    run: { dir: '/o/r', runId: 'r', started: '2026-11-27T00:00:00Z', ended: { at: 'x', reason: 'signal', clean: false, message: HOSTILE }, stored: 1, conflicts: 0, boots: 1 },
    device: { state: 'device', agent: { alive: false, lastError: HOSTILE, kmemleak: HOSTILE } },
  } as unknown as Parameters<typeof renderStatus>[0]));
  assert.doesNotMatch(text, /[\x00-\x08\x0b-\x1f\x7f-\x9f]/);
  assert.match(text, /last error: ok\?\]0;PWNED/);
});
