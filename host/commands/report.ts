// PLACEHOLDER: owned by the helper building `kml report`; replace entirely.
import type { Command } from 'commander';
export function registerReport(_program: Command): void {}
