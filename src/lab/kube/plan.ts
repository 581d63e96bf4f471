/**
 * The Kubernetes cluster of a lab (`kmcast lab up --kubernetes`), planned and rendered. Pure:
 * names, addresses, directories, certificates to issue, every config file and argv; cluster.ts
 * runs them.
 *
 * Control plane: its own namespace kmc<id>-cp behind the router like a node (link `kmccp`
 * 172.31.0.1 <-> `kmcup` 172.31.0.2), running etcd (127.0.0.1, plain: nothing else shares the
 * namespace), kube-apiserver (:6443 on 172.31.0.2, TLS), kube-controller-manager and
 * kube-scheduler. Kubelets and pods reach the API server at a routed lab address, as in a real
 * cluster; the host reaches it through 127.0.0.1:<port> (a forwarder over a unix socket, which
 * no network namespace confines).
 *
 * Worker node i (the lab node kmc<id>-n<i>): containerd and kubelet run in the node's network
 * namespace with the host's mount namespace (their mounts must see each other's, like on one
 * machine), each with its own directories, socket and cgroup root /kmc<id>-n<i>. Pods get their
 * addresses from CNI host-local in the node's 10.244.<i>.0/24 from .100 up (the lab's own pods
 * use .11 onwards): `ptp` on calico-style nodes (a /32 and a host route per pod), `bridge` on
 * bridge-style nodes (the lab's kmcbr, gateway .1).
 */
import { join } from 'node:path';
import { stringify } from 'yaml';
import { NETNS_PREFIX, bridgeGateway, podCidr, routerNetns, underlayNodeIp, NODE_BRIDGE, NODE_UPLINK } from '../plan.js';
import type { LabCommand } from '../plan.js';
import type { LabNode, LabSpec } from '../types.js';

export const CP_ROUTER_LINK = 'kmccp';
export const CP_IP = '172.31.0.2';
export const CP_ROUTER_IP = '172.31.0.1';
export const APISERVER_PORT = 6443;
/** Services: 10.97/16, clear of the lab DNS 10.96.0.10 on the router. */
export const SERVICE_CIDR = '10.97.0.0/16';
export const KUBERNETES_SERVICE_IP = '10.97.0.1';
export const CLUSTER_DNS_IP = '10.97.0.10';
export const CLUSTER_DOMAIN = 'cluster.local';
export const CLUSTER_CIDR = '10.244.0.0/16';
export const CNI_NETWORK = 'kmc-lab';
export const CNI_BIN_DIR = '/usr/lib/cni';
/** Where the containers' images and snapshots live: on disk, not in /run's memory. */
export const DATA_ROOT = '/var/lib/kmcast-lab';
export const PAUSE_IMAGE = 'kmcast-lab/pause:1';
export const APPS_IMAGE = 'kmcast-lab/apps:1';
export const corednsImage = (version: string): string => `kmcast-lab/coredns:${version}`;
export const NODE_STYLE_LABEL = 'kmcast.lab/style';

export const cpNetns = (id: string): string => `${NETNS_PREFIX}${id}-cp`;
export const kubeNodeName = (id: string, node: number): string => `${NETNS_PREFIX}${id}-n${node}`;
/** The cgroup every container of node i lives under, in every hierarchy. */
export const nodeCgroupRoot = (id: string, node: number): string => `/${NETNS_PREFIX}${id}-n${node}`;
export const podRangeStart = (node: number): string => `10.244.${node}.100`;
export const podRangeEnd = (node: number): string => `10.244.${node}.250`;

export interface KubeDirs {
  /** Under the lab's state dir (/run): pki, kubeconfigs, etcd, logs, sockets. */
  readonly state: string;
  readonly pki: string;
  readonly etcd: string;
  /** Under DATA_ROOT: containerd's content and snapshots, kubelet's root dir and the container logs. */
  readonly data: string;
}

export function kubeDirs(labStateDir: string, id: string): KubeDirs {
  const state = join(labStateDir, 'kube');
  return { state, pki: join(state, 'pki'), etcd: join(state, 'etcd'), data: join(DATA_ROOT, id) };
}

/** The unix socket between the host's forwarder and the control plane's. */
export const apiserverSocket = (dirs: KubeDirs): string => join(dirs.state, 'apiserver.sock');

export interface NodeDirs {
  readonly state: string;
  readonly containerdRoot: string;
  readonly containerdState: string;
  readonly socket: string;
  readonly kubeletRoot: string;
  readonly podLogs: string;
  readonly cniConf: string;
  readonly cniIpam: string;
  readonly runcRoot: string;
  readonly containerdConfig: string;
  readonly kubeletConfig: string;
  readonly kubeconfig: string;
  readonly resolvConf: string;
  readonly proxyConfig: string;
  readonly proxyKubeconfig: string;
}

export function nodeDirs(dirs: KubeDirs, node: number): NodeDirs {
  const state = join(dirs.state, `n${node}`);
  return {
    state,
    containerdRoot: join(dirs.data, `n${node}`, 'containerd'),
    containerdState: join(state, 'containerd'),
    socket: join(state, 'containerd.sock'),
    // On disk too: kubelet measures its root dir's filesystem, which must be a block device's.
    kubeletRoot: join(dirs.data, `n${node}`, 'kubelet'),
    podLogs: join(dirs.data, `n${node}`, 'pods'),
    cniConf: join(state, 'cni'),
    cniIpam: join(state, 'ipam'),
    runcRoot: join(state, 'runc'),
    containerdConfig: join(state, 'containerd.toml'),
    kubeletConfig: join(state, 'kubelet.yaml'),
    kubeconfig: join(state, 'kubelet.kubeconfig'),
    resolvConf: join(state, 'resolv.conf'),
    proxyConfig: join(state, 'kube-proxy.yaml'),
    proxyKubeconfig: join(state, 'kube-proxy.kubeconfig'),
  };
}

/** The control-plane namespace and its uplink, as a node's (plan.ts nodeCommands). */
export function controlPlaneCommands(spec: LabSpec): LabCommand[] {
  const r = routerNetns(spec.id);
  const cp = cpNetns(spec.id);
  const mtu = String(spec.mtu);
  return [
    { argv: ['ip', 'netns', 'add', cp] },
    { argv: ['ip', 'link', 'set', 'lo', 'up'], netns: cp },
    { argv: ['ip', 'link', 'add', CP_ROUTER_LINK, 'type', 'veth', 'peer', 'name', NODE_UPLINK, 'netns', cp], netns: r },
    { argv: ['ip', 'addr', 'add', `${CP_ROUTER_IP}/24`, 'dev', CP_ROUTER_LINK], netns: r },
    { argv: ['ip', 'link', 'set', CP_ROUTER_LINK, 'mtu', mtu, 'up'], netns: r },
    { argv: ['ip', 'addr', 'add', `${CP_IP}/24`, 'dev', NODE_UPLINK], netns: cp },
    { argv: ['ip', 'link', 'set', NODE_UPLINK, 'mtu', mtu, 'up'], netns: cp },
    { argv: ['ip', 'route', 'add', 'default', 'via', CP_ROUTER_IP], netns: cp },
  ];
}

// --- certificates -------------------------------------------------------------------------------

export interface CertSpec {
  /** File stem in the pki dir: <name>.crt, <name>.key. */
  readonly name: string;
  readonly cn: string;
  readonly org?: string;
  /** Subject alternative names (server certificates), e.g. 'IP:10.97.0.1', 'DNS:kubernetes'. */
  readonly sans?: readonly string[];
}

/** Every certificate the cluster uses, signed by one lab CA. */
export function certSpecs(spec: LabSpec, nodes: readonly LabNode[]): CertSpec[] {
  return [
    {
      name: 'apiserver',
      cn: 'kube-apiserver',
      sans: [
        `IP:${CP_IP}`,
        `IP:${KUBERNETES_SERVICE_IP}`,
        'IP:127.0.0.1',
        'DNS:localhost',
        'DNS:kubernetes',
        'DNS:kubernetes.default',
        'DNS:kubernetes.default.svc',
        `DNS:kubernetes.default.svc.${CLUSTER_DOMAIN}`,
      ],
    },
    { name: 'apiserver-kubelet-client', cn: 'kube-apiserver-kubelet-client', org: 'system:masters' },
    { name: 'admin', cn: 'kubernetes-admin', org: 'system:masters' },
    { name: 'controller-manager', cn: 'system:kube-controller-manager' },
    { name: 'scheduler', cn: 'system:kube-scheduler' },
    { name: 'kube-proxy', cn: 'system:kube-proxy' },
    ...nodes.map((n) => ({ name: `kubelet-n${n.index}`, cn: `system:node:${kubeNodeName(spec.id, n.index)}`, org: 'system:nodes' })),
  ];
}

/** openssl argv: the CA, the service-account key pair, and per certificate a key, a CSR and the signed certificate. */
export function caCommands(pki: string): LabCommand[] {
  return [
    { argv: ['openssl', 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', join(pki, 'ca.key')] },
    {
      argv: ['openssl', 'req', '-x509', '-new', '-key', join(pki, 'ca.key'), '-subj', '/CN=kmcast-lab-ca', '-days', '30', '-out', join(pki, 'ca.crt'),
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature'],
    },
    { argv: ['openssl', 'genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', join(pki, 'sa.key')] },
    { argv: ['openssl', 'pkey', '-in', join(pki, 'sa.key'), '-pubout', '-out', join(pki, 'sa.pub')] },
  ];
}

export function certCommands(pki: string, c: CertSpec): LabCommand[] {
  const key = join(pki, `${c.name}.key`);
  const csr = join(pki, `${c.name}.csr`);
  const ext = join(pki, `${c.name}.ext`);
  const subj = `/CN=${c.cn}${c.org ? `/O=${c.org}` : ''}`;
  return [
    { argv: ['openssl', 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key] },
    { argv: ['openssl', 'req', '-new', '-key', key, '-subj', subj, '-out', csr] },
    {
      argv: ['openssl', 'x509', '-req', '-in', csr, '-CA', join(pki, 'ca.crt'), '-CAkey', join(pki, 'ca.key'), '-CAcreateserial', '-days', '30',
        '-extfile', ext, '-out', join(pki, `${c.name}.crt`)],
    },
  ];
}

/** The x509 extensions file of a certificate (written before certCommands run). */
export function certExtensions(c: CertSpec): string {
  const lines = ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment'];
  lines.push(`extendedKeyUsage=${c.sans ? 'serverAuth,clientAuth' : 'clientAuth'}`);
  if (c.sans) lines.push(`subjectAltName=${c.sans.join(',')}`);
  return `${lines.join('\n')}\n`;
}

// --- kubeconfigs --------------------------------------------------------------------------------

export function kubeconfig(server: string, pki: string, user: string, certName: string): string {
  return `apiVersion: v1
kind: Config
clusters:
- name: kmcast-lab
  cluster:
    server: ${server}
    certificate-authority: ${join(pki, 'ca.crt')}
users:
- name: ${user}
  user:
    client-certificate: ${join(pki, `${certName}.crt`)}
    client-key: ${join(pki, `${certName}.key`)}
contexts:
- name: kmcast-lab
  context:
    cluster: kmcast-lab
    user: ${user}
current-context: kmcast-lab
`;
}

export const apiserverUrl = (): string => `https://${CP_IP}:${APISERVER_PORT}`;

// --- control plane argv -------------------------------------------------------------------------

export function etcdArgv(bin: string, dataDir: string): string[] {
  return [
    bin, '--name', 'cp', '--data-dir', dataDir,
    '--listen-client-urls', 'http://127.0.0.1:2379', '--advertise-client-urls', 'http://127.0.0.1:2379',
    '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
    '--initial-cluster', 'cp=http://127.0.0.1:2380', '--initial-cluster-state', 'new',
    '--log-level', 'warn',
  ];
}

export function apiserverArgv(bin: string, pki: string): string[] {
  const p = (f: string): string => join(pki, f);
  return [
    bin,
    `--advertise-address=${CP_IP}`, '--bind-address=0.0.0.0', `--secure-port=${APISERVER_PORT}`,
    '--etcd-servers=http://127.0.0.1:2379',
    `--client-ca-file=${p('ca.crt')}`, `--tls-cert-file=${p('apiserver.crt')}`, `--tls-private-key-file=${p('apiserver.key')}`,
    `--kubelet-client-certificate=${p('apiserver-kubelet-client.crt')}`, `--kubelet-client-key=${p('apiserver-kubelet-client.key')}`,
    '--kubelet-preferred-address-types=InternalIP',
    `--service-cluster-ip-range=${SERVICE_CIDR}`,
    `--service-account-issuer=https://kubernetes.default.svc.${CLUSTER_DOMAIN}`,
    `--service-account-key-file=${p('sa.pub')}`, `--service-account-signing-key-file=${p('sa.key')}`,
    '--authorization-mode=Node,RBAC', '--enable-admission-plugins=NodeRestriction', '--allow-privileged=true',
    // Admission webhooks (and aggregated APIs) are called at their Service's endpoints, the pod
    // IPs the router reaches, not at the ClusterIP: no kube-proxy runs in the control plane's
    // namespace, as on clusters whose control plane is not a node.
    '--enable-aggregator-routing=true',
    '--profiling=false', '--v=1',
  ];
}

export function controllerManagerArgv(bin: string, pki: string, kubeconfigPath: string): string[] {
  const p = (f: string): string => join(pki, f);
  return [
    bin, `--kubeconfig=${kubeconfigPath}`, `--authentication-kubeconfig=${kubeconfigPath}`, `--authorization-kubeconfig=${kubeconfigPath}`,
    '--bind-address=127.0.0.1', '--leader-elect=false', '--use-service-account-credentials=true',
    `--service-account-private-key-file=${p('sa.key')}`, `--root-ca-file=${p('ca.crt')}`,
    `--cluster-signing-cert-file=${p('ca.crt')}`, `--cluster-signing-key-file=${p('ca.key')}`,
    `--service-cluster-ip-range=${SERVICE_CIDR}`, `--cluster-cidr=${CLUSTER_CIDR}`, '--allocate-node-cidrs=false',
    '--profiling=false', '--v=1',
  ];
}

export function schedulerArgv(bin: string, kubeconfigPath: string): string[] {
  return [
    bin, `--kubeconfig=${kubeconfigPath}`, `--authentication-kubeconfig=${kubeconfigPath}`, `--authorization-kubeconfig=${kubeconfigPath}`,
    '--bind-address=127.0.0.1', '--leader-elect=false', '--profiling=false', '--v=1',
  ];
}

// --- worker nodes -------------------------------------------------------------------------------

/**
 * containerd 1.6 (config version 2): everything of its own under the node's dirs, CRI on, CNI
 * from the node's conf dir, OOM scores never below its own. Pod network namespaces are pinned
 * where every containerd pins them, /var/run/netns/cni-<uuid>: the kmcast node agent opens them
 * there (deploy/node mounts that directory); lab down removes the lab's pins (kubeCleanup).
 */
export function containerdConfig(d: NodeDirs): string {
  return `version = 2
root = ${JSON.stringify(d.containerdRoot)}
state = ${JSON.stringify(d.containerdState)}
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = ${JSON.stringify(d.socket)}

[ttrpc]
  address = ${JSON.stringify(`${d.socket}.ttrpc`)}

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = ${JSON.stringify(join(d.containerdRoot, 'opt'))}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = ${JSON.stringify(PAUSE_IMAGE)}
  stream_server_address = "127.0.0.1"
  enable_selinux = false
  # Without CAP_SYS_RESOURCE (so on these machines) runc cannot lower a score: kubelet asks -998
  # for every sandbox. Restricted, no container's score goes below containerd's own.
  restrict_oom_score_adj = true

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = ${JSON.stringify(d.runcRoot)}

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = ${JSON.stringify(CNI_BIN_DIR)}
    conf_dir = ${JSON.stringify(d.cniConf)}
    max_conf_num = 1
`;
}

/** The node's CNI network: ptp (calico style) or the lab bridge (bridge style), host-local IPAM in the node's pod CIDR. */
export function cniConfig(spec: LabSpec, node: LabNode, d: NodeDirs): string {
  const range: Record<string, string> = { subnet: podCidr(node.index), rangeStart: podRangeStart(node.index), rangeEnd: podRangeEnd(node.index) };
  if (node.style === 'bridge') range.gateway = bridgeGateway(node.index);
  const ipam = { type: 'host-local', ranges: [[range]], routes: [{ dst: '0.0.0.0/0' }], dataDir: d.cniIpam };
  const main =
    node.style === 'calico'
      ? { type: 'ptp', mtu: spec.mtu, ipMasq: false, ipam }
      : { type: 'bridge', bridge: NODE_BRIDGE, isGateway: true, ipMasq: false, hairpinMode: false, mtu: spec.mtu, ipam };
  return `${JSON.stringify({ cniVersion: '0.4.0', name: CNI_NETWORK, plugins: [main, { type: 'portmap', capabilities: { portMappings: true } }] }, null, 2)}\n`;
}

/** KubeletConfiguration: cgroupfs under the node's own cgroup root on cgroup v1, never evicting or garbage-collecting the imported images. */
export function kubeletConfig(spec: LabSpec, node: LabNode, d: NodeDirs, pki: string): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 0.0.0.0
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: ${join(pki, 'ca.crt')}
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
cgroupRoot: ${nodeCgroupRoot(spec.id, node.index)}
cgroupsPerQOS: true
enforceNodeAllocatable: ["pods"]
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://${d.socket}
clusterDNS: ["${CLUSTER_DNS_IP}"]
clusterDomain: ${CLUSTER_DOMAIN}
resolvConf: ${d.resolvConf}
podLogsDir: ${d.podLogs}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "0%"
  nodefs.inodesFree: "0%"
  imagefs.available: "0%"
localStorageCapacityIsolation: false
serializeImagePulls: false
protectKernelDefaults: false
maxPods: 110
`;
}

export function kubeletArgv(bin: string, spec: LabSpec, node: LabNode, d: NodeDirs): string[] {
  return [
    bin, `--config=${d.kubeletConfig}`, `--kubeconfig=${d.kubeconfig}`, `--root-dir=${d.kubeletRoot}`, `--cert-dir=${join(d.kubeletRoot, 'pki')}`,
    `--hostname-override=${kubeNodeName(spec.id, node.index)}`, `--node-ip=${underlayNodeIp(node.index)}`,
    `--node-labels=${NODE_STYLE_LABEL}=${node.style}`, '--v=1',
  ];
}

/**
 * kube-proxy in nftables mode, in the node's namespace. Every conntrack setting is left alone:
 * nf_conntrack_max belongs to the whole machine, not to a lab. Masquerading everything keeps a
 * Service answer from a backend on the same bridge as its client on the conntracked path (the
 * bridge would deliver it straight, un-NATed, without br_netfilter).
 */
export function kubeProxyConfig(spec: LabSpec, node: LabNode, d: NodeDirs): string {
  return `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: ${d.proxyKubeconfig}
mode: nftables
clusterCIDR: ${CLUSTER_CIDR}
hostnameOverride: ${kubeNodeName(spec.id, node.index)}
bindAddress: 0.0.0.0
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nftables:
  masqueradeAll: true
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
  udpTimeout: 0s
  udpStreamTimeout: 0s
`;
}

export function kubeProxyArgv(bin: string, d: NodeDirs): string[] {
  return [bin, `--config=${d.proxyConfig}`, '--v=1'];
}

export function containerdArgv(d: NodeDirs): string[] {
  return ['containerd', '--config', d.containerdConfig, '--log-level', 'warn'];
}

/** `ctr` against a node's containerd, in the CRI's namespace. */
export function ctrArgv(d: NodeDirs, args: readonly string[]): string[] {
  return ['ctr', '--address', d.socket, '--namespace', 'k8s.io', ...args];
}

/** The resolv.conf kubelet gives pods as the host's (pods of dnsPolicy Default): the lab DNS. */
export function nodeResolvConf(dnsIp: string): string {
  return `nameserver ${dnsIp}\n`;
}

/** The cluster DNS as kubeadm deploys it: CoreDNS (locally built image) behind kube-dns 10.97.0.10, forwarding to the lab DNS. */
export function corednsManifest(version: string): string {
  const ns = 'kube-system';
  const labels = { 'k8s-app': 'kube-dns' };
  const corefile = `.:53 {
    errors
    health :8080
    ready :8181
    kubernetes ${CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    forward . /etc/resolv.conf
    cache 30
    loop
    reload
}
`;
  const docs = [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'coredns', namespace: ns } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'system:coredns' },
      rules: [
        { apiGroups: [''], resources: ['endpoints', 'services', 'pods', 'namespaces'], verbs: ['list', 'watch'] },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'system:coredns' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:coredns' },
      subjects: [{ kind: 'ServiceAccount', name: 'coredns', namespace: ns }],
    },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'coredns', namespace: ns }, data: { Corefile: corefile } },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'coredns', namespace: ns, labels },
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: 'coredns',
            dnsPolicy: 'Default',
            containers: [
              {
                name: 'coredns',
                image: corednsImage(version),
                imagePullPolicy: 'Never',
                args: ['-conf', '/etc/coredns/Corefile'],
                ports: [
                  { name: 'dns', containerPort: 53, protocol: 'UDP' },
                  { name: 'dns-tcp', containerPort: 53, protocol: 'TCP' },
                ],
                readinessProbe: { httpGet: { path: '/ready', port: 8181 }, periodSeconds: 2 },
                livenessProbe: { httpGet: { path: '/health', port: 8080 }, initialDelaySeconds: 10 },
                volumeMounts: [{ name: 'config', mountPath: '/etc/coredns', readOnly: true }],
              },
            ],
            volumes: [{ name: 'config', configMap: { name: 'coredns' } }],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'kube-dns', namespace: ns, labels },
      spec: {
        clusterIP: CLUSTER_DNS_IP,
        selector: labels,
        ports: [
          { name: 'dns', port: 53, protocol: 'UDP' },
          { name: 'dns-tcp', port: 53, protocol: 'TCP' },
        ],
      },
    },
  ];
  return docs.map((d) => stringify(d)).join('---\n');
}

/** A component's name as lab status shows it: the program, where it runs. */
export function kubeComponent(program: string, netns: string): string {
  return `${program.split('/').pop() ?? program} on ${netns}`;
}

/** Every long-running component of the cluster (the programs lab up starts and records). */
export function kubeComponents(controlPlane: string, nodes: readonly string[]): string[] {
  return [
    ...['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler'].map((p) => kubeComponent(p, controlPlane)),
    ...nodes.flatMap((n) => ['containerd', 'kubelet', 'kube-proxy'].map((p) => kubeComponent(p, n))),
  ];
}
