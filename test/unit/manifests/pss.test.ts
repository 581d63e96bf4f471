import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkPodSecurity } from '../../../src/manifests/pss.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The smallest pod that passes restricted: every later case changes one field of it. */
const good = (): Obj => ({
  metadata: { name: 'p' },
  spec: {
    securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
    containers: [{ name: 'app', image: 'x', securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } } }],
  },
});

const controls = (pod: Obj, level: 'baseline' | 'restricted'): string[] => [...new Set(checkPodSecurity(pod, level).map((v) => v.control))].sort();

test('the minimal restricted pod passes both levels; a pod with no securityContext passes baseline only', () => {
  assert.deepEqual(checkPodSecurity(good(), 'restricted'), []);
  assert.deepEqual(checkPodSecurity(good(), 'baseline'), []);
  const bare = { spec: { containers: [{ name: 'app', image: 'x' }] } };
  assert.deepEqual(checkPodSecurity(bare, 'baseline'), []);
  assert.deepEqual(controls(bare, 'restricted'), ['Capabilities', 'Privilege Escalation', 'Running as Non-root', 'Seccomp']);
});

/** [what, edit of the good pod, the control it violates, the lowest level that forbids it, other restricted controls it also violates]. */
const cases: [string, (p: Obj) => void, string, 'baseline' | 'restricted', string[]?][] = [
  ['pod hostProcess', (p) => (p.spec.securityContext.windowsOptions = { hostProcess: true }), 'HostProcess', 'baseline'],
  ['container hostProcess', (p) => (p.spec.containers[0].securityContext.windowsOptions = { hostProcess: true }), 'HostProcess', 'baseline'],
  ['hostNetwork', (p) => (p.spec.hostNetwork = true), 'Host Namespaces', 'baseline'],
  ['hostPID', (p) => (p.spec.hostPID = true), 'Host Namespaces', 'baseline'],
  ['hostIPC', (p) => (p.spec.hostIPC = true), 'Host Namespaces', 'baseline'],
  ['privileged', (p) => (p.spec.containers[0].securityContext.privileged = true), 'Privileged Containers', 'baseline'],
  ['add NET_ADMIN', (p) => (p.spec.containers[0].securityContext.capabilities.add = ['NET_ADMIN']), 'Capabilities', 'baseline'],
  ['add CHOWN (baseline list, not restricted)', (p) => (p.spec.containers[0].securityContext.capabilities.add = ['CHOWN']), 'Capabilities', 'restricted'],
  ['no drop ALL', (p) => (p.spec.containers[0].securityContext.capabilities = { drop: ['NET_RAW'] }), 'Capabilities', 'restricted'],
  ['hostPath volume', (p) => (p.spec.volumes = [{ name: 'h', hostPath: { path: '/' } }]), 'HostPath Volumes', 'baseline', ['Volume Types']],
  ['nfs volume', (p) => (p.spec.volumes = [{ name: 'n', nfs: { server: 's', path: '/' } }]), 'Volume Types', 'restricted'],
  ['hostPort', (p) => (p.spec.containers[0].ports = [{ containerPort: 80, hostPort: 80 }]), 'Host Ports', 'baseline'],
  ['AppArmor Unconfined', (p) => (p.spec.containers[0].securityContext.appArmorProfile = { type: 'Unconfined' }), 'AppArmor', 'baseline'],
  ['AppArmor annotation unconfined', (p) => (p.metadata.annotations = { 'container.apparmor.security.beta.kubernetes.io/app': 'unconfined' }), 'AppArmor', 'baseline'],
  ['SELinux type spc_t', (p) => (p.spec.securityContext.seLinuxOptions = { type: 'spc_t' }), 'SELinux', 'baseline'],
  ['SELinux user', (p) => (p.spec.containers[0].securityContext.seLinuxOptions = { user: 'system_u' }), 'SELinux', 'baseline'],
  ['procMount Unmasked', (p) => (p.spec.containers[0].securityContext.procMount = 'Unmasked'), '/proc Mount Type', 'baseline'],
  ['seccomp Unconfined', (p) => (p.spec.containers[0].securityContext.seccompProfile = { type: 'Unconfined' }), 'Seccomp', 'baseline'],
  ['no seccomp anywhere', (p) => delete p.spec.securityContext.seccompProfile, 'Seccomp', 'restricted'],
  ['unsafe sysctl', (p) => (p.spec.securityContext.sysctls = [{ name: 'net.core.somaxconn', value: '1024' }]), 'Sysctls', 'baseline'],
  ['allowPrivilegeEscalation unset', (p) => delete p.spec.containers[0].securityContext.allowPrivilegeEscalation, 'Privilege Escalation', 'restricted'],
  ['runAsNonRoot false on the container', (p) => (p.spec.containers[0].securityContext.runAsNonRoot = false), 'Running as Non-root', 'restricted'],
  ['runAsNonRoot nowhere', (p) => delete p.spec.securityContext.runAsNonRoot, 'Running as Non-root', 'restricted'],
  ['runAsUser 0 on the pod', (p) => (p.spec.securityContext.runAsUser = 0), 'Running as Non-root user', 'restricted'],
  [
    'runAsUser 0 in an init container',
    (p) => (p.spec.initContainers = [{ ...structuredClone(p.spec.containers[0]), name: 'i', securityContext: { ...p.spec.containers[0].securityContext, runAsUser: 0 } }]),
    'Running as Non-root user',
    'restricted',
  ],
  [
    'ephemeral container privileged',
    (p) => (p.spec.ephemeralContainers = [{ ...structuredClone(p.spec.containers[0]), name: 'e', securityContext: { ...p.spec.containers[0].securityContext, privileged: true } }]),
    'Privileged Containers',
    'baseline',
  ],
];

for (const [what, edit, control, level, also = []] of cases) {
  test(`Pod Security: ${what} violates ${control} (${level})`, () => {
    const pod = good();
    edit(pod);
    assert.deepEqual(controls(pod, 'restricted'), [control, ...also].sort(), 'restricted reports exactly this control');
    assert.deepEqual(controls(pod, 'baseline'), level === 'baseline' ? [control] : [], 'baseline reports it only when baseline forbids it');
  });
}

test('allowed values pass: safe sysctls, NET_BIND_SERVICE, Localhost profiles, container_t, configMap/secret/projected volumes, hostPort 0', () => {
  const p = good();
  p.spec.securityContext.sysctls = [{ name: 'net.ipv4.ip_unprivileged_port_start', value: '0' }];
  p.spec.securityContext.seLinuxOptions = { type: 'container_t', level: 's0:c1,c2' };
  p.spec.containers[0].securityContext.capabilities.add = ['NET_BIND_SERVICE'];
  p.spec.containers[0].securityContext.seccompProfile = { type: 'Localhost', localhostProfile: 'x.json' };
  p.spec.containers[0].securityContext.appArmorProfile = { type: 'RuntimeDefault' };
  p.spec.containers[0].ports = [{ containerPort: 80, hostPort: 0 }];
  p.metadata.annotations = { 'container.apparmor.security.beta.kubernetes.io/app': 'localhost/prof' };
  p.spec.volumes = ['configMap', 'secret', 'projected', 'emptyDir', 'downwardAPI', 'persistentVolumeClaim', 'csi', 'ephemeral'].map((t) => ({ name: t.toLowerCase(), [t]: {} }));
  assert.deepEqual(checkPodSecurity(p, 'restricted'), []);
  // Container-level runAsNonRoot and seccomp instead of the pod's.
  const q = good();
  q.spec.securityContext = {};
  Object.assign(q.spec.containers[0].securityContext, { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
  assert.deepEqual(checkPodSecurity(q, 'restricted'), []);
});

test('violations name the field path of the offending container', () => {
  const p = good();
  p.spec.initContainers = [structuredClone(p.spec.containers[0])];
  p.spec.containers.push({ name: 'b', image: 'y', securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'], add: ['NET_ADMIN'] } } });
  assert.deepEqual(
    checkPodSecurity(p, 'restricted').map((v) => `${v.level} ${v.path}`),
    ['baseline spec.containers[1].securityContext.capabilities.add', 'restricted spec.containers[1].securityContext.capabilities.add'],
  );
});
