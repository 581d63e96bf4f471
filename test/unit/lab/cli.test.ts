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

test('up: a bad --lan or --lan-hosts is refused before anything is built', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['--nodes', '2', '--lan', '3'], /invalid --lan 3: the LAN attaches to nodes 1 to 2/],
    [['--nodes', '2', '--lan', '1', '--lan-hosts', '0'], /invalid --lan-hosts 0: a LAN has 1 to 50 hosts/],
    [['--nodes', '2', '--lan', '1', '--lan-hosts', '51'], /invalid --lan-hosts 51/],
    [['--nodes', '2', '--lan', '1,b'], /invalid --lan "1,b"/],
    [['--nodes', '2', '--lan-hosts', '3'], /--lan-hosts needs --lan NODES/],
  ];
  for (const [flags, re] of cases) {
    const { cmd } = program();
    await assert.rejects(
      cmd.parseAsync(['node', 'kmcast', 'lab', 'up', '--id', 'zzq7', ...flags]),
      root ? (e: unknown) => e instanceof ConfigError && e.exitCode === 2 && re.test(e.message) : CapabilityError,
      flags.join(' '),
    );
  }
});

test('up --help explains the LAN', async () => {
  const { cmd, out } = program();
  await assert.rejects(cmd.parseAsync(['node', 'kmcast', 'lab', 'up', '--help']), { code: 'commander.helpDisplayed' });
  assert.match(out.join(''), /--lan <nodes>/);
  assert.match(out.join(''), /--lan-hosts <n>/);
  assert.match(out.join(''), /IGMP snooping/);
});
