// Text for a human's terminal. Device text (agent.log lines, props, heartbeat errors, comm names)
// can hold escape sequences that retitle, clear or reprogram a terminal: every control character
// except tab and newline becomes '?' before kml prints it. JSON output needs none of this
// (JSON.stringify escapes control characters).

// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

export function terminalSafe(s: string): string {
  return s.replace(CONTROL, '?');
}
