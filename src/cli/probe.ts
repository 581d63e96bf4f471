import type { Command } from 'commander';
import { KmcastError } from '../errors.js';

// Placeholder until the command lands; registered so that main.ts stays stable.
export function registerProbe(program: Command): void {
  program
    .command('probe')
    .description('(not yet available)')
    .action(() => {
      throw new KmcastError('kmcast probe is not available in this build yet');
    });
}
