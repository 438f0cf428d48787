// PLACEHOLDER: owned by the helper building `kml collect`; replace entirely.
import type { Command } from 'commander';
export function registerCollect(_program: Command): void {}
