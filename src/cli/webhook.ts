import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import type { Command } from 'commander';
import { Option } from 'commander';
import { ConfigError } from '../errors.js';
import { createLogger, LOG_LEVELS } from '../log.js';
import type { LogLevel } from '../log.js';
import { INJECT_MODES } from '../manifests/node-inject.js';
import type { InjectMode } from '../manifests/node-inject.js';
import { startWebhookServer } from '../manifests/webhook-server.js';
import { addAgentOptions, agentOptionsFrom } from './inject.js';
import type { AgentFlags } from './inject.js';

interface WebhookFlags extends AgentFlags {
  tlsCert: string;
  tlsKey: string;
  addr: string;
  strict: boolean;
  logLevel: string;
  mode: InjectMode;
}

/** Parses `:8443`, `0.0.0.0:8443` or `[::]:8443`. */
export function parseListenAddr(addr: string): { host?: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(addr);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) throw new ConfigError(`--addr: invalid address "${addr}" (use :8443, 0.0.0.0:8443 or [::]:8443)`);
  const host = m[1] ?? m[2];
  return host ? { host, port } : { port };
}

function readTls(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`${flag}: read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
}

/**
 * Checks the PEM files before the server uses them, so a mistake names its flag: a certificate
 * that does not parse (--tls-cert), a key that does not parse (--tls-key), or a key that is not
 * the certificate's (--tls-key). Node's own TLS errors name neither file.
 */
export function checkTls(tls: { cert: Buffer; key: Buffer }, files: { cert: string; key: string }): void {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(tls.cert);
  } catch (err) {
    throw new ConfigError(`--tls-cert: ${files.cert} is not a PEM certificate (${(err as Error).message})`, { cause: err });
  }
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(tls.key);
  } catch (err) {
    throw new ConfigError(`--tls-key: ${files.key} is not a PEM private key (${(err as Error).message})`, { cause: err });
  }
  if (!x509.checkPrivateKey(key)) throw new ConfigError(`--tls-key: ${files.key} does not match the certificate in --tls-cert ${files.cert}`);
}

/** Turns a listen error into a message naming --addr. */
export function listenError(err: unknown, addr: string): Error {
  const code = (err as NodeJS.ErrnoException).code;
  const what =
    code === 'EADDRINUSE'
      ? 'is already in use (another process listens there; pick another port)'
      : code === 'EADDRNOTAVAIL'
        ? 'is not an address of this host (use :PORT to listen on every address)'
        : code === 'EACCES'
          ? 'needs privileges (ports below 1024; use a higher port such as 8443)'
          : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
            ? 'has a host name that does not resolve'
            : undefined;
  return what ? new ConfigError(`--addr: ${addr} ${what}`, { cause: err }) : (err as Error);
}

export function registerWebhook(program: Command): void {
  const cmd = program
    .command('webhook')
    .summary('mutating admission webhook that injects the sidecar into labelled pods')
    .description('Mutating admission webhook: injects the kmcast agent into pods labelled kmcast.io/inject=enabled')
    .requiredOption('--tls-cert <file>', 'PEM certificate of the webhook Service')
    .requiredOption('--tls-key <file>', 'PEM private key')
    .option('--addr <addr>', 'listen address', ':8443')
    .option('--strict', 'deny opted-in pods that cannot be injected (default: admit unchanged with a warning)', false)
    .option('--log-level <level>', `one of ${LOG_LEVELS.join(', ')}`, 'info')
    .addOption(
      new Option(
        '--mode <mode>',
        'how opted-in pods are served unless they carry the annotation kmcast.io/mode: sidecar (agent in the pod) or node (the kmcast-node DaemonSet; the pod gets only the kmcast-wait init container)',
      )
        .choices(INJECT_MODES)
        .default('sidecar'),
    );
  addAgentOptions(cmd)
    .addHelpText(
      'after',
      `
Serves POST /mutate (AdmissionReview v1, JSONPatch) and GET /healthz over TLS. The certificate
files are re-read when they change (cert-manager renewals need no restart).

A pod chooses its mode with the annotation kmcast.io/mode: node | sidecar; without it, --mode
applies. In node mode the pod gets the label, the kmcast-wait init container and nothing else
(the domain's headless Service comes from kmcast inject or the app's own manifests).

Examples:
  kmcast webhook --tls-cert /tls/tls.crt --tls-key /tls/tls.key --addr :8443
  kmcast webhook --tls-cert /tls/tls.crt --tls-key /tls/tls.key --mode node`,
    )
    .action(async (flags: WebhookFlags) => {
      if (!(LOG_LEVELS as readonly string[]).includes(flags.logLevel)) {
        throw new ConfigError(`--log-level: invalid value "${flags.logLevel}" (one of ${LOG_LEVELS.join(', ')})`);
      }
      const log = createLogger(flags.logLevel as LogLevel, { component: 'webhook' });
      const listen = parseListenAddr(flags.addr);
      if (flags.mode === 'node' && flags.legacy) throw new ConfigError('--legacy: only for --mode sidecar (node mode adds an ordinary init container)');
      const opts = { ...agentOptionsFrom(flags), strict: flags.strict, mode: flags.mode };
      const tls = () => ({ cert: readTls('--tls-cert', flags.tlsCert), key: readTls('--tls-key', flags.tlsKey) });
      const first = tls();
      checkTls(first, { cert: flags.tlsCert, key: flags.tlsKey });
      const srv = await startWebhookServer(first, listen, opts, log).catch((err: unknown) => {
        throw listenError(err, flags.addr);
      });
      log.info({ addr: flags.addr, port: srv.port }, 'webhook listening');
      const reload = (): void => {
        try {
          const next = tls();
          checkTls(next, { cert: flags.tlsCert, key: flags.tlsKey });
          srv.server.setSecureContext({ ...next, minVersion: 'TLSv1.2' });
          log.info('TLS certificate reloaded');
        } catch (err) {
          log.error({ err }, 'reload TLS certificate failed; keeping the old one');
        }
      };
      watchFile(flags.tlsCert, { interval: 30_000 }, reload);
      await new Promise<void>((resolve) => {
        const stop = (): void => resolve();
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
      unwatchFile(flags.tlsCert);
      await srv.close();
    });
}
