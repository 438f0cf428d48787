// PLACEHOLDER: owned by the helper building `kml lab`; replace entirely.
import type { Command } from 'commander';
export function registerLab(_program: Command): void {}
