import type { Command } from 'commander';
import { KmcastError } from '../errors.js';

// Placeholder until the command lands; registered so that main.ts stays stable.
export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('(not yet available)')
    .action(() => {
      throw new KmcastError('kmcast status is not available in this build yet');
    });
}
