import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { CapabilityError, ConfigError } from '../../../src/errors.js';
import { registerLab } from '../../../src/cli/lab.js';

function program(): { cmd: Command; out: string[] } {
  const out: string[] = [];
  const cmd = new Command('kmcast');
  registerLab(cmd);
  const quiet = (c: Command): void => {
    c.exitOverride();
    c.configureOutput({ writeOut: (s) => out.push(s), writeErr: (s) => out.push(s) });
    c.commands.forEach(quiet);
  };
  quiet(cmd);
  return { cmd, out };
}

const root = process.getuid?.() === 0;

test('every lab subcommand has help with examples', async () => {
  for (const sub of ['up', 'down', 'status', 'exec', 'matrix']) {
    const { cmd, out } = program();
    await assert.rejects(cmd.parseAsync(['node', 'kmcast', 'lab', sub, '--help']), { code: 'commander.helpDisplayed' });
    assert.match(out.join(''), /Examples:\n {2}sudo kmcast lab /, sub);
  }
});

test('a bad flag is refused before anything is built (or root is asked for first)', async () => {
  const { cmd } = program();
  await assert.rejects(
    cmd.parseAsync(['node', 'kmcast', 'lab', 'up', '--id', 'zzq7', '--nodes', 'calico,weave']),
    root
      ? (e: unknown) => e instanceof ConfigError && /unknown node style "weave"/.test(e.message)
      : (e: unknown) => e instanceof CapabilityError && e.message === 'kmcast lab needs root (network namespaces): run with sudo',
  );
});

test('down: --id and --all conflict', async () => {
  const { cmd } = program();
  await assert.rejects(
    cmd.parseAsync(['node', 'kmcast', 'lab', 'down', '--id', 'zzq7', '--all']),
    root ? (e: unknown) => e instanceof ConfigError && /--id and --all conflict/.test(e.message) : CapabilityError,
  );
});
