import type { Command } from 'commander';
import { KmcastError } from '../errors.js';

// Placeholder until the command lands; registered so that main.ts stays stable.
export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('(not yet available)')
    .action(() => {
      throw new KmcastError('kmcast doctor is not available in this build yet');
    });
}
