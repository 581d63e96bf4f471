import type { Command } from 'commander';
import { KmcastError } from '../errors.js';

// Placeholder until the command lands; registered so that main.ts stays stable.
export function registerLab(program: Command): void {
  program
    .command('lab')
    .description('(not yet available)')
    .action(() => {
      throw new KmcastError('kmcast lab is not available in this build yet');
    });
}
