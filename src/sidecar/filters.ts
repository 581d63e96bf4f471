/**
 * The pod's nftables: the allow-list (only peers may send to the VXLAN port, and to the control
 * port without a key) and the eth0 capture (multicast and broadcast sent out of eth0 moved into
 * vx0), applied in one transaction and read back (src/overlay/allowlist.ts, capture.ts). This is
 * what the sidecar knows of them between passes: what was applied, whether the capture was read
 * back since the last invalidation, and their counters for /status and the metrics.
 *
 * Order, as the agent's passes need it: the allow-list's peers before the overlay changes, the
 * capture after it (`fwd to "vx0"` needs the device, so nothing of the capture is applied before
 * `overlayUp`). A set of peers equal to the last one applied is not applied again until
 * `invalidate()` (the periodic resync) asks for a read-back; a re-created vx0 invalidates the
 * capture at once (its `fwd to` named the old device's index). With --insecure-no-allowlist only
 * the capture is installed, read back the same way.
 */
import { errorMessage, KmcastError } from '../errors.js';
import type { AllowList, AllowListState } from '../overlay/allowlist.js';
import type { CaptureSpec, CaptureState } from '../overlay/capture.js';
import { capturedPackets } from '../overlay/capture.js';
import type { AgentStatus } from './status-types.js';

/** The capture chain alone (--insecure-no-allowlist): applied and read back, or removed. */
export interface CaptureClient {
  apply(spec: CaptureSpec): Promise<CaptureState>;
  remove(): Promise<void>;
}

export interface PodFiltersOptions {
  readonly allowList: Pick<AllowList, 'apply' | 'read' | 'remove'>;
  readonly capture: CaptureClient;
  readonly vxlanPort: number;
  readonly controlPort: number;
  /** --insecure-no-allowlist: no allow-list, the capture alone. */
  readonly noAllowList: boolean;
  /** --capture on. */
  readonly captureOn: boolean;
  /** The allow-list as applied or read: its drop counters by rule comment, and the peers admitted (when applied). */
  readonly observe?: (o: { peers?: number; dropped: Readonly<Record<string, number>> }) => void;
}

export class PodFilters {
  /** The admitted peers last applied (joined), undefined when a read-back is due. */
  private allowed: string | undefined;
  private allowListInstalled = false;
  /** What the capture moves into the overlay device; set once that device exists. */
  private target: CaptureSpec | undefined;
  private captureState: CaptureState | undefined;
  private captureInstalled = false;
  /** Read back since the last invalidation. */
  private captureVerified = false;

  constructor(private readonly o: PodFiltersOptions) {}

  /** The peers a previous agent's allow-list admitted (kept during the start's grace). */
  async inherited(): Promise<readonly string[]> {
    if (this.o.noAllowList) return [];
    return (await this.o.allowList.read().catch(() => undefined))?.peers ?? [];
  }

  /**
   * The allow-list with `peers` (and, `withCapture`, the capture once the overlay is up), applied
   * when either differs from what was applied or a read-back is due. `initial`: a start's, whose
   * KmcastError ends the start as it is.
   */
  async sync(peers: readonly string[], keyed: boolean, opts: { withCapture?: boolean; initial?: boolean } = {}): Promise<void> {
    if (this.o.noAllowList) {
      if (opts.withCapture) await this.syncCaptureOnly();
      return;
    }
    const key = peers.join(',');
    const capture = opts.withCapture ? this.captureSpec() : undefined;
    if (key === this.allowed && (!capture || this.captureVerified)) return;
    let state: AllowListState;
    try {
      state = await this.o.allowList.apply({ vxlanPort: this.o.vxlanPort, controlPort: keyed ? undefined : this.o.controlPort, peers, capture });
    } catch (err) {
      this.allowListInstalled = false;
      if (capture) this.captureInstalled = false;
      if (opts.initial && err instanceof KmcastError) throw err;
      throw new KmcastError(`sync admission allow-list: ${errorMessage(err)}`, { cause: err });
    }
    this.allowed = key;
    this.allowListInstalled = true;
    if (capture) {
      this.captureState = state.capture;
      this.captureInstalled = true;
      this.captureVerified = true;
    }
    this.o.observe?.({ peers: peers.length, dropped: state.dropped });
  }

  /** --insecure-no-allowlist: removes a list an earlier agent left (it would block everything). */
  async removeAllowList(): Promise<void> {
    await this.o.allowList.remove();
  }

  /**
   * The overlay device exists: install the capture (fail closed at a start), or, with --capture
   * off, remove one an earlier agent left. True when a capture was installed.
   */
  async overlayUp(target: CaptureSpec, peers: readonly string[], keyed: boolean): Promise<boolean> {
    this.target = target;
    if (!this.o.captureOn) {
      await this.o.capture.remove();
      return false;
    }
    this.captureVerified = false;
    await this.sync(peers, keyed, { withCapture: true, initial: true });
    return true;
  }

  private captureSpec(): CaptureSpec | undefined {
    return this.o.captureOn ? this.target : undefined;
  }

  private async syncCaptureOnly(): Promise<void> {
    const spec = this.captureSpec();
    if (!spec || this.captureVerified) return;
    try {
      this.captureState = await this.o.capture.apply(spec);
      this.captureInstalled = true;
      this.captureVerified = true;
    } catch (err) {
      this.captureInstalled = false;
      throw err;
    }
  }

  /** The periodic resync: read both back at the next pass. */
  invalidate(): void {
    this.allowed = undefined;
    this.captureVerified = false;
  }

  /** The overlay device was re-created: the capture's `fwd to` names the old one. */
  deviceRecreated(): void {
    this.captureVerified = false;
  }

  /** Reads the kernel's counters (allow-list drops, capture forwards) into the state. */
  async refreshCounters(): Promise<void> {
    if (!this.allowListInstalled) return;
    const state = await this.o.allowList.read(this.captureSpec()).catch(() => undefined);
    if (state?.capture) this.captureState = state.capture;
    this.o.observe?.({ dropped: state?.dropped ?? {} });
  }

  /** For /status. */
  status(underlay: string): Pick<AgentStatus, 'allowList' | 'capture'> {
    return {
      allowList: { installed: this.allowListInstalled, peers: this.allowed ? this.allowed.split(',').filter(Boolean).length : 0 },
      capture: {
        path: this.o.captureOn ? 'nft-netdev-egress' : 'off',
        underlay,
        installed: this.captureInstalled,
        forwarded: capturedPackets(this.captureState),
        forwarded6: this.captureState?.ipv6?.packets ?? 0,
        icmp6Dropped: this.captureState?.icmp6Dropped ?? 0,
      },
    };
  }

  /** SIGTERM: an empty allow-list (nothing admitted); the capture stays with vx0. */
  async quiesce(keyed: boolean): Promise<void> {
    if (this.o.noAllowList) return;
    await this.o.allowList.apply({ vxlanPort: this.o.vxlanPort, controlPort: keyed ? undefined : this.o.controlPort, peers: [] });
  }

  /** A failed start: the allow-list and the capture go. */
  async remove(): Promise<void> {
    if (!this.o.noAllowList) await this.o.allowList.remove({ capture: true });
    else await this.o.capture.remove();
  }
}
