import type { Command } from 'commander';
import { KmcastError } from '../errors.js';

// Placeholder until the command lands; registered so that main.ts stays stable.
export function registerLint(program: Command): void {
  program
    .command('lint')
    .description('(not yet available)')
    .action(() => {
      throw new KmcastError('kmcast lint is not available in this build yet');
    });
}
