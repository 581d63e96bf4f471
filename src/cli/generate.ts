import type { Command } from 'commander';
import { KmcastError } from '../errors.js';

// Placeholder until the command lands; registered so that main.ts stays stable.
export function registerGenerate(program: Command): void {
  program
    .command('generate')
    .description('(not yet available)')
    .action(() => {
      throw new KmcastError('kmcast generate is not available in this build yet');
    });
}
