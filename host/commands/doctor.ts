// PLACEHOLDER: owned by the helper building `kml doctor`; replace entirely.
import type { Command } from 'commander';
export function registerDoctor(_program: Command): void {}
