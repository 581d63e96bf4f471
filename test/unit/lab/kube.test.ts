/** The lab cluster's pure parts: cache keys, build argv, certificates, configs, parsers. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parse } from 'yaml';
import { GO_MODULES, binDir, buildKey, cacheDir, goBuildArgv, kubeVersionLdflags, niced } from '../../../src/lab/kube/versions.js';
import {
  CLUSTER_DNS_IP,
  CP_IP,
  KUBERNETES_SERVICE_IP,
  certExtensions,
  certSpecs,
  cniConfig,
  containerdConfig,
  controlPlaneCommands,
  corednsManifest,
  kubeComponents,
  kubeDirs,
  kubeProxyConfig,
  kubeletArgv,
  kubeletConfig,
  nodeCgroupRoot,
  nodeDirs,
} from '../../../src/lab/kube/plan.js';
import { cgroupMounts, mountsUnder, parseNodesReady, podNetnsPins } from '../../../src/lab/kube/cluster.js';
import { IMAGE_EXCLUDES, isImageExcluded, KMCAST_WRAPPER, parseDockerfileRuntime } from '../../../src/lab/kube/kmcast-image.js';
import { buildSpec, labIdOfNetns, planLab } from '../../../src/lab/plan.js';

const kube = GO_MODULES.find((m) => m.name === 'kubernetes')!;

test('kubeVersionLdflags stamps the release into component-base and client-go', () => {
  const f = kubeVersionLdflags('v1.34.4');
  for (const pkg of ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version']) {
    assert.ok(f.includes(`-X ${pkg}.gitVersion=v1.34.4`), f);
    assert.ok(f.includes(`-X ${pkg}.gitMajor=1`) && f.includes(`-X ${pkg}.gitMinor=34`), f);
  }
  assert.throws(() => kubeVersionLdflags('1.34'), /vMAJOR\.MINOR\.PATCH/);
});

test('buildKey changes with go.sum, the toolchain and the flags, and only then', () => {
  const k = buildKey(kube, 'mod', 'sum', 'go version go1.26.8 linux/amd64');
  assert.match(k, /^[0-9a-f]{12}$/);
  assert.equal(buildKey(kube, 'mod', 'sum', 'go version go1.26.8 linux/amd64\n'), k);
  assert.notEqual(buildKey(kube, 'mod', 'sum2', 'go version go1.26.8 linux/amd64'), k);
  assert.notEqual(buildKey(kube, 'mod', 'sum', 'go version go1.26.9 linux/amd64'), k);
  assert.notEqual(buildKey({ ...kube, ldflags: '-s' }, 'mod', 'sum', 'go version go1.26.8 linux/amd64'), k);
  assert.equal(binDir('/c', kube, k), `/c/bin/kubernetes-${kube.version}-${k}`);
});

test('cacheDir: default, override, and a relative path refused', () => {
  assert.equal(cacheDir({}), '/var/cache/kmcast-lab');
  assert.equal(cacheDir({ KMCAST_LAB_CACHE: '/srv/c/' }), '/srv/c');
  assert.throws(() => cacheDir({ KMCAST_LAB_CACHE: 'rel' }), /absolute/);
});

test('goBuildArgv builds every binary of a module into one directory, niced', () => {
  const argv = goBuildArgv(kube, '/out');
  assert.deepEqual(argv.slice(0, 3), ['go', 'build', '-v']);
  assert.equal(argv[argv.indexOf('-o') + 1], '/out/');
  assert.ok(argv.includes('k8s.io/kubernetes/cmd/kubelet') && argv.includes('k8s.io/kubernetes/cmd/kube-apiserver'));
  const etcd = GO_MODULES.find((m) => m.name === 'etcd')!;
  assert.equal(goBuildArgv(etcd, '/out')[goBuildArgv(etcd, '/out').indexOf('-o') + 1], '/out/etcd');
  assert.deepEqual(niced(['go']).slice(0, 5), ['nice', '-n', '19', 'ionice', '-c3']);
});

const spec = buildSpec({ id: 'k1', nodes: ['calico', 'bridge'], podsPerNode: 0 }, { minPods: 0 });
const lab = planLab(spec);
const dirs = kubeDirs('/run/kmcast/labs/k1', 'k1');

test('a Kubernetes lab may have no namespace pods; a plain lab still needs one', () => {
  assert.equal(lab.pods.length, 0);
  assert.throws(() => buildSpec({ podsPerNode: 0 }), /--pods 0/);
});

test('the control-plane namespace belongs to its lab and hangs off the router', () => {
  assert.equal(labIdOfNetns('kmck1-cp'), 'k1');
  assert.equal(labIdOfNetns('kmck1-cpx'), undefined);
  const cmds = controlPlaneCommands(spec);
  assert.deepEqual(cmds[0], { argv: ['ip', 'netns', 'add', 'kmck1-cp'] });
  assert.ok(cmds.some((c) => c.netns === 'kmck1-cp' && c.argv.join(' ') === `ip addr add ${CP_IP}/24 dev kmcup`));
});

test('certificates: a serving certificate for every way to the API server, client certificates per identity', () => {
  const certs = certSpecs(spec, lab.nodes);
  const api = certs.find((c) => c.name === 'apiserver');
  assert.ok(api?.sans?.includes(`IP:${CP_IP}`) && api.sans.includes(`IP:${KUBERNETES_SERVICE_IP}`) && api.sans.includes('IP:127.0.0.1'));
  assert.deepEqual(
    certs.filter((c) => c.name.startsWith('kubelet-')).map((c) => [c.cn, c.org]),
    [
      ['system:node:kmck1-n1', 'system:nodes'],
      ['system:node:kmck1-n2', 'system:nodes'],
    ],
  );
  assert.match(certExtensions(api!), /extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:/);
  assert.doesNotMatch(certExtensions(certs.find((c) => c.name === 'admin')!), /subjectAltName|serverAuth/);
});

test('CNI: ptp on a calico-style node, the lab bridge on a bridge-style node, IPAM per node', () => {
  const [n1, n2] = lab.nodes;
  const c1 = JSON.parse(cniConfig(spec, n1!, nodeDirs(dirs, 1))) as { plugins: Array<Record<string, unknown>> };
  const c2 = JSON.parse(cniConfig(spec, n2!, nodeDirs(dirs, 2))) as { plugins: Array<Record<string, unknown>> };
  assert.equal(c1.plugins[0]?.type, 'ptp');
  assert.equal(c2.plugins[0]?.type, 'bridge');
  assert.equal(c2.plugins[0]?.bridge, 'kmcbr');
  const range = (c: typeof c1): unknown => (c.plugins[0]?.ipam as { ranges: unknown[][] }).ranges[0]?.[0];
  assert.deepEqual(range(c1), { subnet: '10.244.1.0/24', rangeStart: '10.244.1.100', rangeEnd: '10.244.1.250' });
  assert.deepEqual(range(c2), { subnet: '10.244.2.0/24', rangeStart: '10.244.2.100', rangeEnd: '10.244.2.250', gateway: '10.244.2.1' });
  assert.equal((c1.plugins[0]?.ipam as { dataDir: string }).dataDir, '/run/kmcast/labs/k1/kube/n1/ipam');
});

test('node configs: own socket, dirs and cgroup root; images on disk', () => {
  const d = nodeDirs(dirs, 2);
  const cd = containerdConfig(d);
  assert.match(cd, /address = "\/run\/kmcast\/labs\/k1\/kube\/n2\/containerd.sock"/);
  assert.match(cd, /root = "\/var\/lib\/kmcast-lab\/k1\/n2\/containerd"/);
  // Pod namespaces where a real node has them (/var/run/netns), for the node agent.
  assert.doesNotMatch(cd, /netns_mounts_under_state_dir/);
  assert.match(cd, /SystemdCgroup = false/);
  assert.match(cd, /restrict_oom_score_adj = true/);
  const kc = kubeletConfig(spec, lab.nodes[1]!, d, dirs.pki);
  assert.equal(nodeCgroupRoot('k1', 2), '/kmck1-n2');
  assert.match(kc, /cgroupRoot: \/kmck1-n2\n/);
  assert.match(kc, /cgroupDriver: cgroupfs\n/);
  assert.match(kc, /failCgroupV1: false\n/);
  assert.match(kc, /imageGCHighThresholdPercent: 100\n/);
  const argv = kubeletArgv('/bin/kubelet', spec, lab.nodes[1]!, d);
  assert.ok(argv.includes('--node-ip=172.31.2.2') && argv.includes('--hostname-override=kmck1-n2') && argv.includes('--node-labels=kmcast.lab/style=bridge'));
});

test('parseNodesReady reads the Ready condition of each node', () => {
  const json = JSON.stringify({
    items: [
      { metadata: { name: 'a' }, status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'ok' }] } },
      { metadata: { name: 'b' }, status: { conditions: [{ type: 'Ready', status: 'False', reason: 'KubeletNotReady', message: 'cni' }] } },
      { metadata: { name: 'c' }, status: {} },
    ],
  });
  assert.deepEqual(parseNodesReady(json), [
    { name: 'a', ready: true, reason: 'KubeletReady: ok' },
    { name: 'b', ready: false, reason: 'KubeletNotReady: cni' },
    { name: 'c', ready: false, reason: 'no Ready condition yet' },
  ]);
});

test('podNetnsPins: the cni-<uuid> pins a containerd metadata database names, once each, nothing else', () => {
  const a = 'cni-0c829984-532a-7a5c-c5d1-aed6a2791205';
  const b = 'cni-11111111-2222-3333-4444-555555555555';
  const db = `\u0000\u0007NetNSPath\u0000/var/run/netns/${b}"\u0001{"NetNSPath":"/var/run/netns/${a}"} /var/run/netns/${a} /var/run/netns/kmck1-n1 /run/netns/cni-x /var/run/netns/cni-zzzzzzzz-532a-7a5c-c5d1-aed6a2791205`;
  assert.deepEqual(podNetnsPins(db), [a, b]);
  assert.deepEqual(podNetnsPins(''), []);
});

test('mountsUnder: only mounts under the prefixes (not a sibling with a longer name), deepest first', () => {
  const mi = [
    '22 1 0:21 / /run rw shared:5 - tmpfs tmpfs rw',
    '100 22 0:50 / /run/kmcast/labs/k1/kube/n1/kubelet rw - tmpfs tmpfs rw',
    '101 100 0:51 / /run/kmcast/labs/k1/kube/n1/kubelet/pods/x/volumes/token rw - tmpfs tmpfs rw',
    '102 22 0:52 / /run/kmcast/labs/k1/kube2/other rw - tmpfs tmpfs rw',
    '103 1 0:53 / /var/lib/kmcast-lab/k1/n1/containerd/rootfs rw - overlay overlay rw',
  ].join('\n');
  assert.deepEqual(mountsUnder(mi, ['/run/kmcast/labs/k1/kube', '/var/lib/kmcast-lab/k1']), [
    '/run/kmcast/labs/k1/kube/n1/kubelet/pods/x/volumes/token',
    '/var/lib/kmcast-lab/k1/n1/containerd/rootfs',
    '/run/kmcast/labs/k1/kube/n1/kubelet',
  ]);
});

test('cgroupMounts lists v1 controllers and the v2 tree', () => {
  const m = 'tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\nproc /proc proc rw 0 0';
  assert.deepEqual(cgroupMounts(m), ['/sys/fs/cgroup/memory', '/sys/fs/cgroup/unified']);
});

test('kube-proxy: nftables mode for its node, leaving the machine-wide conntrack settings alone', () => {
  const c = kubeProxyConfig(spec, lab.nodes[0]!, nodeDirs(dirs, 1));
  assert.match(c, /\nmode: nftables\n/);
  assert.match(c, /\nhostnameOverride: kmck1-n1\n/);
  assert.match(c, /\n {2}maxPerCore: 0\n {2}min: 0\n/);
  assert.match(c, /kubeconfig: \/run\/kmcast\/labs\/k1\/kube\/n1\/kube-proxy.kubeconfig\n/);
});

test('CoreDNS manifest: the locally built image, never pulled, behind kube-dns on the cluster DNS address', () => {
  const docs = corednsManifest('v1.12.4')
    .split(/^---$/m)
    .map((d) => parse(d) as { kind: string; spec?: Record<string, unknown> });
  assert.deepEqual(docs.map((d) => d.kind), ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'Deployment', 'Service']);
  const svc = docs.find((d) => d.kind === 'Service');
  assert.equal(svc?.spec?.clusterIP, CLUSTER_DNS_IP);
  const dep = docs.find((d) => d.kind === 'Deployment') as unknown as { spec: { template: { spec: { dnsPolicy: string; containers: Array<{ image: string; imagePullPolicy: string }> } } } };
  assert.equal(dep.spec.template.spec.containers[0]?.image, 'kmcast-lab/coredns:v1.12.4');
  assert.equal(dep.spec.template.spec.containers[0]?.imagePullPolicy, 'Never');
  assert.equal(dep.spec.template.spec.dnsPolicy, 'Default');
});

test("parseDockerfileRuntime reads the final stage of deploy/Dockerfile: the lab's kmcast image starts as the real one", () => {
  const r = parseDockerfileRuntime(readFileSync(new URL('../../../../deploy/Dockerfile', import.meta.url), 'utf8'));
  assert.equal(r.entrypoint[0], 'node');
  assert.equal(r.entrypoint[r.entrypoint.length - 1], '/app/dist/src/cli/main.js');
  assert.deepEqual(r.cmd, ['--help']);
  assert.equal(r.workdir, '/app');
  assert.ok(r.env.includes('NODE_ENV=production'), r.env.join(' '));
  const multi = 'FROM a AS b\nENTRYPOINT ["x"]\nFROM c\nENV A=1 \\\n B=2\nENTRYPOINT ["y", "z"]\n';
  assert.deepEqual(parseDockerfileRuntime(multi), { entrypoint: ['y', 'z'], cmd: [], workdir: '/', env: ['A=1', 'B=2'] });
  assert.throws(() => parseDockerfileRuntime('FROM a\nCMD ["x"]\n'), /no ENTRYPOINT/);
});

test('the kmcast command on PATH: the Dockerfile copies the wrapper the lab image copies, an executable that runs the entrypoint program', () => {
  const df = readFileSync(new URL('../../../../deploy/Dockerfile', import.meta.url), 'utf8');
  const final = df.slice(df.lastIndexOf('\nFROM '));
  assert.ok(final.includes(`\nCOPY ${KMCAST_WRAPPER.src} ${KMCAST_WRAPPER.dest}\n`), 'the final stage copies the wrapper');
  const wrapper = new URL(`../../../../${KMCAST_WRAPPER.src}`, import.meta.url);
  assert.ok((statSync(wrapper).mode & 0o111) !== 0, 'executable in the checkout (COPY keeps the mode)');
  const text = readFileSync(wrapper, 'utf8');
  assert.match(text, /^#!\/bin\/sh\n/);
  assert.ok(text.includes(`exec node ${parseDockerfileRuntime(df).entrypoint.at(-1)!} "$@"`), text);
});

test('kubeComponents: what lab status expects to run, named as it names a running process', () => {
  const c = kubeComponents('kmck1-cp', ['kmck1-n1', 'kmck1-n2']);
  assert.equal(c.length, 4 + 2 * 3);
  assert.ok(c.includes('kube-apiserver on kmck1-cp') && c.includes('kube-proxy on kmck1-n2'));
});

test('the image leaves the lab and the demo out, the Dockerfile and the lab image alike, and nothing shipped imports them', () => {
  const df = readFileSync(new URL('../../../../deploy/Dockerfile', import.meta.url), 'utf8');
  const rm = /cd dist\/src && rm -rf ([^\n]+)/.exec(df)?.[1]?.trim().split(/\s+/);
  assert.deepEqual(rm, [...IMAGE_EXCLUDES], 'the Dockerfile removes what the lab image leaves out');
  for (const p of ['lab', 'lab/kube/cluster.js', 'cli/lab.js', 'cli/demo.js.map']) assert.equal(isImageExcluded(p), true, p);
  for (const p of ['cli/main.js', 'cli/node.js', 'node/agent.js', 'labels.js', 'cli/labs.js']) assert.equal(isImageExcluded(p), false, p);
  // Every module the image carries may import only modules the image carries.
  const root = new URL('../../../../src/', import.meta.url);
  const files = (readdirSync(root, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts'));
  const shipped = files.filter((f) => !isImageExcluded(f.replace(/\.ts$/, '.js')));
  const bad: string[] = [];
  for (const f of shipped) {
    if (f === join('cli', 'main.ts')) continue; // loads them on demand, with a message when absent
    for (const m of readFileSync(new URL(f, root), 'utf8').matchAll(/from '(\.[^']+)'/g)) {
      const target = join(dirname(f), m[1]!);
      if (isImageExcluded(target)) bad.push(`${f} imports ${m[1]}`);
    }
  }
  assert.deepEqual(bad, []);
});
