/**
 * The Pod Security Standards (`baseline` and `restricted`), as a pure check of one pod: metadata
 * and spec in, the violated controls out. It follows the controls of the Kubernetes "Pod Security
 * Standards" page one by one (the fields and allowed values of each table row), for Linux pods:
 * the Windows exemptions of the restricted profile (spec.os.name: windows) are not modelled.
 *
 * Used by the tests to prove node-mode injection adds nothing that `restricted` forbids, by
 * `kmcast inject --mode node` to say whether the injected pods pass, and by `kmcast lint` for
 * workloads in a namespace that enforces a level.
 */

export type PssLevel = 'baseline' | 'restricted';

export interface PssViolation {
  /** The control's name as the standard's table calls it, e.g. "Capabilities". */
  readonly control: string;
  readonly level: PssLevel;
  /** Field path relative to the pod, e.g. `spec.containers[0].securityContext.privileged`. */
  readonly path: string;
  readonly message: string;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const obj = (v: unknown): Obj => (isObj(v) ? v : {});

/** Capabilities baseline allows to add (the standard's list); restricted allows only NET_BIND_SERVICE. */
export const BASELINE_CAPABILITIES: readonly string[] = [
  'AUDIT_WRITE',
  'CHOWN',
  'DAC_OVERRIDE',
  'FOWNER',
  'FSETID',
  'KILL',
  'MKNOD',
  'NET_BIND_SERVICE',
  'SETFCAP',
  'SETGID',
  'SETPCAP',
  'SETUID',
  'SYS_CHROOT',
];
/** The "safe" sysctls baseline allows. */
export const SAFE_SYSCTLS: readonly string[] = [
  'kernel.shm_rmid_forced',
  'net.ipv4.ip_local_port_range',
  'net.ipv4.ip_unprivileged_port_start',
  'net.ipv4.tcp_syncookies',
  'net.ipv4.ping_group_range',
  'net.ipv4.ip_local_reserved_ports',
  'net.ipv4.tcp_keepalive_time',
  'net.ipv4.tcp_fin_timeout',
  'net.ipv4.tcp_keepalive_intvl',
  'net.ipv4.tcp_keepalive_probes',
];
/** Volume types restricted allows (every other `spec.volumes[*]` source is forbidden). */
export const RESTRICTED_VOLUME_TYPES: readonly string[] = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];
const SELINUX_TYPES = ['', 'container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t'];
const APPARMOR_ANNOTATION = 'container.apparmor.security.beta.kubernetes.io/';

interface Container {
  readonly c: Obj;
  readonly path: string;
}

function containersOf(spec: Obj): Container[] {
  return (['initContainers', 'containers', 'ephemeralContainers'] as const).flatMap((k) => list(spec[k]).map((c, i) => ({ c: obj(c), path: `spec.${k}[${i}]` })));
}

/** The violations of one pod against `level` (restricted includes every baseline control). */
export function checkPodSecurity(pod: { metadata?: unknown; spec?: unknown }, level: PssLevel): PssViolation[] {
  const meta = obj(pod.metadata);
  const spec = obj(pod.spec);
  const psc = obj(spec.securityContext);
  const containers = containersOf(spec);
  const out: PssViolation[] = [];
  const v = (lvl: PssLevel, control: string, path: string, message: string): void => {
    out.push({ control, level: lvl, path, message });
  };
  const restricted = level === 'restricted';

  // --- baseline ---
  if (obj(psc.windowsOptions).hostProcess === true) v('baseline', 'HostProcess', 'spec.securityContext.windowsOptions.hostProcess', 'hostProcess must be unset or false');
  for (const { c, path } of containers) {
    if (obj(obj(c.securityContext).windowsOptions).hostProcess === true) {
      v('baseline', 'HostProcess', `${path}.securityContext.windowsOptions.hostProcess`, 'hostProcess must be unset or false');
    }
  }
  for (const k of ['hostNetwork', 'hostPID', 'hostIPC'] as const) {
    if (spec[k] === true) v('baseline', 'Host Namespaces', `spec.${k}`, `${k} must be unset or false`);
  }
  for (const { c, path } of containers) {
    const sc = obj(c.securityContext);
    if (sc.privileged === true) v('baseline', 'Privileged Containers', `${path}.securityContext.privileged`, 'privileged must be unset or false');
    const add = list(obj(sc.capabilities).add).map(String);
    for (const cap of add) {
      if (!BASELINE_CAPABILITIES.includes(cap)) v('baseline', 'Capabilities', `${path}.securityContext.capabilities.add`, `adds ${cap}, not in the baseline list`);
    }
  }
  list(spec.volumes).forEach((vol, i) => {
    if (isObj(vol) && vol.hostPath !== undefined) v('baseline', 'HostPath Volumes', `spec.volumes[${i}].hostPath`, `volume ${String(vol.name)} is a hostPath`);
  });
  for (const { c, path } of containers) {
    list(c.ports).forEach((p, i) => {
      const hp = obj(p).hostPort;
      if (hp !== undefined && hp !== 0) v('baseline', 'Host Ports', `${path}.ports[${i}].hostPort`, `hostPort ${String(hp)} must be unset or 0`);
    });
  }
  const appArmorOk = (t: unknown): boolean => t === undefined || t === 'RuntimeDefault' || t === 'Localhost';
  if (!appArmorOk(obj(psc.appArmorProfile).type)) v('baseline', 'AppArmor', 'spec.securityContext.appArmorProfile.type', `AppArmor profile ${String(obj(psc.appArmorProfile).type)} is not allowed`);
  for (const { c, path } of containers) {
    const t = obj(obj(c.securityContext).appArmorProfile).type;
    if (!appArmorOk(t)) v('baseline', 'AppArmor', `${path}.securityContext.appArmorProfile.type`, `AppArmor profile ${String(t)} is not allowed`);
  }
  for (const [k, val] of Object.entries(obj(meta.annotations))) {
    if (k.startsWith(APPARMOR_ANNOTATION) && val !== 'runtime/default' && !(typeof val === 'string' && val.startsWith('localhost/'))) {
      v('baseline', 'AppArmor', `metadata.annotations[${JSON.stringify(k)}]`, `AppArmor annotation ${String(val)} is not allowed`);
    }
  }
  const seLinux = (se: unknown, path: string): void => {
    if (!isObj(se)) return;
    if (se.type !== undefined && !SELINUX_TYPES.includes(String(se.type))) v('baseline', 'SELinux', `${path}.type`, `SELinux type ${String(se.type)} is not allowed`);
    for (const k of ['user', 'role'] as const) {
      if (se[k] !== undefined && se[k] !== '') v('baseline', 'SELinux', `${path}.${k}`, `SELinux ${k} must be unset or empty`);
    }
  };
  seLinux(psc.seLinuxOptions, 'spec.securityContext.seLinuxOptions');
  for (const { c, path } of containers) seLinux(obj(c.securityContext).seLinuxOptions, `${path}.securityContext.seLinuxOptions`);
  for (const { c, path } of containers) {
    const pm = obj(c.securityContext).procMount;
    if (pm !== undefined && pm !== 'Default') v('baseline', '/proc Mount Type', `${path}.securityContext.procMount`, `procMount ${String(pm)} must be unset or Default`);
  }
  const podSeccomp = obj(psc.seccompProfile).type;
  if (podSeccomp === 'Unconfined') v('baseline', 'Seccomp', 'spec.securityContext.seccompProfile.type', 'seccomp Unconfined is not allowed');
  for (const { c, path } of containers) {
    if (obj(obj(c.securityContext).seccompProfile).type === 'Unconfined') {
      v('baseline', 'Seccomp', `${path}.securityContext.seccompProfile.type`, 'seccomp Unconfined is not allowed');
    }
  }
  list(psc.sysctls).forEach((s, i) => {
    const name = String(obj(s).name);
    if (!SAFE_SYSCTLS.includes(name)) v('baseline', 'Sysctls', `spec.securityContext.sysctls[${i}].name`, `sysctl ${name} is not in the safe set`);
  });
  if (!restricted) return out;

  // --- restricted ---
  list(spec.volumes).forEach((vol, i) => {
    if (!isObj(vol)) return;
    for (const k of Object.keys(vol)) {
      if (k !== 'name' && !RESTRICTED_VOLUME_TYPES.includes(k)) v('restricted', 'Volume Types', `spec.volumes[${i}].${k}`, `volume ${String(vol.name)} is of type ${k}`);
    }
  });
  const podNonRoot = psc.runAsNonRoot === true;
  if (psc.runAsUser === 0) v('restricted', 'Running as Non-root user', 'spec.securityContext.runAsUser', 'runAsUser must not be 0');
  const podSeccompOk = podSeccomp === 'RuntimeDefault' || podSeccomp === 'Localhost';
  for (const { c, path } of containers) {
    const sc = obj(c.securityContext);
    if (sc.allowPrivilegeEscalation !== false) {
      v('restricted', 'Privilege Escalation', `${path}.securityContext.allowPrivilegeEscalation`, 'allowPrivilegeEscalation must be false');
    }
    if (sc.runAsNonRoot === false || (sc.runAsNonRoot !== true && !podNonRoot)) {
      v('restricted', 'Running as Non-root', `${path}.securityContext.runAsNonRoot`, 'runAsNonRoot must be true (on the container, or on the pod and not false here)');
    }
    if (sc.runAsUser === 0) v('restricted', 'Running as Non-root user', `${path}.securityContext.runAsUser`, 'runAsUser must not be 0');
    const t = obj(sc.seccompProfile).type;
    if (t === undefined ? !podSeccompOk : t !== 'RuntimeDefault' && t !== 'Localhost') {
      v('restricted', 'Seccomp', `${path}.securityContext.seccompProfile.type`, 'seccompProfile.type must be RuntimeDefault or Localhost (here or on the pod)');
    }
    const caps = obj(sc.capabilities);
    if (!list(caps.drop).map(String).includes('ALL')) v('restricted', 'Capabilities', `${path}.securityContext.capabilities.drop`, 'capabilities must drop ALL');
    for (const cap of list(caps.add).map(String)) {
      if (cap !== 'NET_BIND_SERVICE') v('restricted', 'Capabilities', `${path}.securityContext.capabilities.add`, `adds ${cap}; restricted allows only NET_BIND_SERVICE`);
    }
  }
  return out;
}

/** One line per violation, for reports. */
export function formatViolations(vs: readonly PssViolation[]): string[] {
  return vs.map((x) => `${x.control}: ${x.path}: ${x.message}`);
}
