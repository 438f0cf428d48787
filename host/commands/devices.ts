// PLACEHOLDER: owned by the helper building `kml devices`; replace entirely.
import type { Command } from 'commander';
export function registerDevices(_program: Command): void {}
