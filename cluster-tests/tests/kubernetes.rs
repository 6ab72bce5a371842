//! The Kubernetes manifests, run as processes: renders the `dev` overlay with `kubectl
//! kustomize`, takes the node StatefulSet's and the gateway Deployment's command, arguments and
//! environment (ConfigMap, Secret, downward API) from it, and starts that topology on loopback
//! the way the kubelets would: three node pods at once, finding each other by their headless
//! Service names, and a gateway. Then an S3 smoke test, a fourth pod as `kubectl scale` would
//! add it, and a pod restarted on an empty volume, which must join the running cluster rather
//! than start a second one.
//!
//! Stand-ins for the cluster (see `cluster_tests::k8s`): each pod has its own loopback address
//! (127.A.B.10+ordinal, the gateway .100) and keeps the ports of the manifests; a pod DNS name
//! `cairn-N.cairn-peers.<ns>.svc.<domain>` in an argument is replaced by that pod's address (no
//! cluster DNS here); the volume mount `/data` is a temp dir per pod; the pods carry the
//! `topology.kubernetes.io/zone` label that the PodTopologyLabels admission copies from nodes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use cluster_tests::cluster::{admin_command, admin_command_with_env, status_field};
use cluster_tests::k8s::{Container, Manifests, PodMeta, PodNet, localize_env, str_at};
use cluster_tests::pki::TestPki;
use cluster_tests::{
    Proc, Profile, cairn_bin, delete_object, get_bytes, put_checked, quoted_md5, random_bytes,
    s3_client, try_get,
};
use tempfile::TempDir;

const NODE_LISTENERS: &[&str] = &["rpc", "http"];
const GATEWAY_LISTENERS: &[&str] = &["s3", "web", "http"];
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// The rendered overlay and the loopback stand-ins for its pods.
struct Topology {
    manifests: Manifests,
    net: PodNet,
    root: TempDir,
    bin: PathBuf,
    namespace: String,
    statefulset: String,
    node: Container,
    gateway: Container,
    /// Extra environment of the admin commands (e.g. `CAIRN_GRPC_TLS_CA`).
    admin_env: Vec<(String, String)>,
}

impl Topology {
    fn new(overlay: &str) -> Topology {
        let manifests = Manifests::render_overlay(overlay);
        let sts = manifests.get("StatefulSet", "cairn");
        let spec = &sts["spec"];
        assert_eq!(str_at(spec, &["podManagementPolicy"]), Some("Parallel"));
        assert_eq!(spec["replicas"].as_u64(), Some(3));
        let service = str_at(spec, &["serviceName"])
            .expect("serviceName")
            .to_string();
        let headless = manifests.get("Service", &service);
        assert_eq!(str_at(&headless["spec"], &["clusterIP"]), Some("None"));
        assert_eq!(
            headless["spec"]["publishNotReadyAddresses"].as_bool(),
            Some(true)
        );
        let namespace = str_at(sts, &["metadata", "namespace"])
            .expect("the overlay sets a namespace")
            .to_string();
        let config = manifests.get_generated("ConfigMap", "cairn-config-");
        let domain = str_at(config, &["data", "CLUSTER_DOMAIN"]).unwrap_or("cluster.local");
        let mut net = PodNet::new();
        for ordinal in 0..8u8 {
            let name = format!("cairn-{ordinal}.{service}.{namespace}.svc.{domain}");
            net.add_host(&name, net.ip(10 + ordinal));
        }
        let node = manifests.container("StatefulSet", "cairn");
        let gateway = manifests.container("Deployment", "cairn-gateway");
        Topology {
            manifests,
            net,
            root: tempfile::Builder::new()
                .prefix("cairn-k8s-")
                .tempdir()
                .expect("temp dir"),
            bin: cairn_bin(Profile::Debug),
            namespace,
            statefulset: "cairn".into(),
            node,
            gateway,
            admin_env: Vec::new(),
        }
    }

    /// The host directory standing in for volume `mount` of pod `pod`: the `data` volume is
    /// the pod's own directory, any other volume a directory beside it.
    fn mount_dir(&self, pod: &str, mount: &str) -> PathBuf {
        match mount {
            "data" => self.root.path().join(pod),
            _ => self.root.path().join(format!("{pod}.{mount}")),
        }
    }

    /// Puts `files` (name in the volume, source file) into volume `mount` of pod `pod`, as
    /// the kubelet projects a Secret.
    fn project(&self, pod: &str, mount: &str, files: &[(&str, &Path)]) {
        let dir = self.mount_dir(pod, mount);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, source) in files {
            std::fs::copy(source, dir.join(name)).unwrap();
        }
    }

    /// Downward-API view of a pod of `workload` (template labels plus a zone label).
    fn pod_meta(&self, kind: &str, workload: &str, name: &str, zone: &str) -> PodMeta {
        let template = &self.manifests.get(kind, workload)["spec"]["template"];
        let mut labels: BTreeMap<String, String> = template["metadata"]["labels"]
            .as_mapping()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                let s = |v: &serde_yaml::Value| v.as_str().unwrap_or_default().to_string();
                (s(k), s(v))
            })
            .collect();
        labels.insert(ZONE_LABEL.into(), zone.into());
        PodMeta {
            name: name.into(),
            namespace: self.namespace.clone(),
            labels,
        }
    }

    /// Starts `container` as pod `pod` at address number `n`; returns once it listens.
    fn start(&self, container: &Container, pod: &PodMeta, n: u8, wanted: &[&str]) -> Proc {
        let env = container.env(&self.manifests, pod);
        let line = container.command_line(&env);
        assert_eq!(line[0], "cairn", "the image's binary is `cairn`: {line:?}");
        let mounts: Vec<(String, PathBuf)> = container
            .mounts()
            .into_iter()
            .map(|(name, path)| (path, self.mount_dir(&pod.name, &name)))
            .collect();
        let args = self.net.localize(&line[1..], self.net.ip(n), &mounts);
        let env = localize_env(&env, &mounts);
        Proc::spawn(
            &pod.name,
            &self.bin,
            args,
            env,
            self.root.path().join(format!("{}.log", pod.name)),
            wanted,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts StatefulSet pod `cairn-ORDINAL` (not waiting for it to be ready).
    fn start_node(&self, ordinal: u8) -> Proc {
        let name = format!("{}-{ordinal}", self.statefulset);
        let zone = format!("zone-{}", ordinal % 3);
        let pod = self.pod_meta("StatefulSet", &self.statefulset, &name, &zone);
        self.start(&self.node, &pod, 10 + ordinal, NODE_LISTENERS)
    }

    fn start_gateway(&self) -> Proc {
        let pod = self.pod_meta("Deployment", "cairn-gateway", "cairn-gateway-0", "zone-0");
        self.start(&self.gateway, &pod, 100, GATEWAY_LISTENERS)
    }

    fn secret(&self, key: &str) -> String {
        self.manifests.secret("cairn-secrets", key)
    }

    /// `cairn ARGS --node <pod>` with the cluster secret from the rendered Secret; stdout.
    fn admin(&self, node: &Proc, args: &[&str]) -> String {
        let rpc = node.addr("rpc").to_string();
        let secret = self.secret("cluster-secret");
        let out = admin_command_with_env(&self.bin, &rpc, &secret, &self.admin_env, args);
        assert!(
            out.success(),
            "cairn {args:?} --node {rpc}: {}\n{}",
            out.status_text(),
            out.stderr
        );
        out.stdout
    }

    /// The node id of pod `cairn-ORDINAL` (from its volume).
    fn node_id(&self, ordinal: u8) -> String {
        let path = self.root.path().join(format!("cairn-{ordinal}/node_id"));
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// The Raft leader id `node` reports (`cairn status`), if any.
    fn leader_seen_by(&self, node: &Proc) -> Option<String> {
        let status = self.admin(node, &["status"]);
        let raft = status_field(&status, "raft:");
        let leader = raft.rsplit("leader ").next()?.trim_end_matches(')');
        (leader != "none").then(|| leader.to_string())
    }
}

/// `GET /metrics` of `proc`, parsed as Prometheus text format. Beyond the parser (which skips
/// what it does not understand): every family is declared once and every sample belongs to a
/// declared family.
async fn scrape(proc: &Proc) -> prometheus_parse::Scrape {
    let url = format!("http://{}/metrics", proc.addr("http"));
    let text = reqwest::get(&url)
        .await
        .and_then(|r| r.error_for_status())
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .text()
        .await
        .expect("metrics body");
    let mut families: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(
                families.insert(name.into(), kind.into()).is_none(),
                "{name} declared twice"
            );
        } else if !line.starts_with('#') && !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|f| families.get(*f).is_some_and(|k| k == "histogram"))
                })
                .unwrap_or(name);
            assert!(
                families.contains_key(family),
                "sample without a TYPE: {line}"
            );
        }
    }
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text format");
    assert!(!scrape.samples.is_empty(), "{text}");
    scrape
}

/// The value of the sample `name` whose labels include `labels` (0 when there is none).
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    use prometheus_parse::Value;
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.last().map(|b| b.count).unwrap_or(0.0),
            Value::Summary(_) => panic!("{name} is a summary"),
        })
        .unwrap_or(0.0)
}

fn wait_ready(procs: &mut [&mut Proc]) {
    for p in procs.iter_mut() {
        p.wait_ready()
            .unwrap_or_else(|e| panic!("{e}\n{}", p.log_tail()));
    }
}

/// Waits until `cond` holds (every 250 ms); panics with `what` after `limit`.
fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_overlay_bootstraps_serves_scales_and_survives_an_empty_volume() {
    let topo = Topology::new("dev");

    // Three pods at once (Parallel), each with --join naming all three and --bootstrap-expect 3.
    let mut nodes: Vec<Proc> = (0..3).map(|i| topo.start_node(i)).collect();
    wait_ready(&mut nodes.iter_mut().collect::<Vec<_>>());
    let mut gateway = topo.start_gateway();
    wait_ready(&mut [&mut gateway]);
    let leader = topo.leader_seen_by(&nodes[0]).expect("a leader");
    for node in &nodes {
        assert_eq!(topo.leader_seen_by(node).as_deref(), Some(leader.as_str()));
    }
    let layout = topo.admin(&nodes[0], &["layout", "show"]);
    assert!(
        layout.starts_with("layout version 1, replication 3, 3 node(s)"),
        "{layout}"
    );

    let before = scrape(&gateway).await;

    // S3 smoke test with the first access key from the rendered Secret.
    let s3 = s3_client(
        &format!("http://{}", gateway.addr("s3")),
        &topo.secret("access-key-id"),
        &topo.secret("secret-access-key"),
    );
    let bucket = "k8s-smoke";
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("CreateBucket");
    let body = random_bytes(200 * 1024);
    let put = s3
        .put_object()
        .bucket(bucket)
        .key("dir/object")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("PutObject");
    assert_eq!(put.e_tag(), Some(quoted_md5(&body).as_str()));
    s3.put_object()
        .bucket(bucket)
        .key("doomed")
        .body(ByteStream::from_static(b"bye"))
        .send()
        .await
        .expect("PutObject doomed");
    assert_eq!(get_bytes(&s3, bucket, "dir/object").await, body);
    delete_object(&s3, bucket, "doomed").await;
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("List");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["dir/object"]);

    // /metrics moves with the traffic: requests by operation and status, latency, bytes.
    let after = scrape(&gateway).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        sample(&after, name, labels) - sample(&before, name, labels)
    };
    let put_ok = [("op", "PutObject"), ("status", "200")];
    assert_eq!(moved("cairn_s3_requests_total", &put_ok), 2.0);
    assert_eq!(
        moved(
            "cairn_s3_requests_total",
            &[("op", "GetObject"), ("status", "200")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "cairn_s3_requests_total",
            &[("op", "DeleteObject"), ("status", "204")]
        ),
        1.0
    );
    assert_eq!(
        moved("cairn_s3_request_duration_seconds", &[("op", "PutObject")]),
        2.0
    );
    assert!(moved("cairn_s3_received_bytes_total", &[]) >= body.len() as f64);
    assert!(moved("cairn_s3_sent_bytes_total", &[]) >= body.len() as f64);
    let node_metrics = scrape(&nodes[0]).await;
    assert!(sample(&node_metrics, "cairn_raft_term", &[]) >= 1.0);
    assert!(sample(&node_metrics, "cairn_raft_commit_index", &[]) >= 1.0);
    assert_eq!(
        sample(
            &node_metrics,
            "cairn_raft_leader_info",
            &[("leader", leader.as_str())]
        ),
        1.0
    );
    assert!(sample(&node_metrics, "cairn_data_free_bytes", &[]) > 0.0);
    assert!(sample(&node_metrics, "cairn_object_records", &[]) >= 1.0);

    // `kubectl scale statefulset cairn --replicas 4`: pod cairn-3, same template, joins alone.
    let mut fourth = topo.start_node(3);
    wait_ready(&mut [&mut fourth]);
    let fourth_id = topo.node_id(3);
    wait_until(Duration::from_secs(30), "cairn-3 listed as up", || {
        topo.admin(&nodes[0], &["status"])
            .lines()
            .any(|l| l.starts_with(&fourth_id) && l.contains(" up"))
    });
    assert_eq!(
        topo.leader_seen_by(&fourth).as_deref(),
        Some(leader.as_str())
    );
    nodes.push(fourth);

    // A follower pod comes back on an empty volume: a new node that joins the running
    // cluster (same leader, same buckets), never a second cluster of its own.
    let victim = (0..3u8)
        .find(|i| topo.node_id(*i) != leader)
        .expect("a follower");
    let old_id = topo.node_id(victim);
    let pod = &mut nodes[victim as usize];
    pod.kill_9();
    std::fs::remove_dir_all(topo.root.path().join(format!("cairn-{victim}"))).expect("wipe");
    pod.restart(NODE_LISTENERS)
        .unwrap_or_else(|e| panic!("{e}\n{}", pod.log_tail()));
    wait_ready(&mut [pod]);
    let new_id = topo.node_id(victim);
    assert!(
        !new_id.is_empty() && new_id != old_id,
        "a wiped volume is a new node"
    );
    let pod = &nodes[victim as usize];
    assert_eq!(topo.leader_seen_by(pod).as_deref(), Some(leader.as_str()));
    let buckets = topo.admin(pod, &["bucket", "list"]);
    assert!(buckets.contains(bucket), "{buckets}");
    let status = topo.admin(&nodes[0], &["status"]);
    assert!(
        status.lines().any(|l| l.starts_with(&new_id)),
        "the wiped pod joined as a new node:\n{status}"
    );
    assert_eq!(get_bytes(&s3, bucket, "dir/object").await, body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_tls_overlay_forms_a_cluster_that_talks_tls_only() {
    let mut topo = Topology::new("dev-grpc-tls");
    // The Secret `cairn-grpc-tls` as cert-manager would issue it: the pods' names (here their
    // loopback addresses, which stand in for the DNS names) plus localhost.
    let names: Vec<String> = (0..3u8)
        .map(|i| topo.net.ip(10 + i).to_string())
        .chain(["localhost".to_string(), "127.0.0.1".to_string()])
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let pki = TestPki::for_names("cairn k8s test CA", &names);
    let secret_files = [
        ("tls.crt", pki.cert.as_path()),
        ("tls.key", pki.key.as_path()),
        ("ca.crt", pki.ca.as_path()),
    ];
    for ordinal in 0..3 {
        topo.project(&format!("cairn-{ordinal}"), "grpc-tls", &secret_files);
    }
    // The gateway's volume projects only the CA.
    topo.project("cairn-gateway-0", "grpc-tls", &secret_files[2..]);

    let mut nodes: Vec<Proc> = (0..3).map(|i| topo.start_node(i)).collect();
    wait_ready(&mut nodes.iter_mut().collect::<Vec<_>>());
    let mut gateway = topo.start_gateway();
    wait_ready(&mut [&mut gateway]);

    // Plaintext admin commands get nothing from a TLS listener; with the CA they work.
    let rpc = nodes[0].addr("rpc").to_string();
    let plain = admin_command(&topo.bin, &rpc, &topo.secret("cluster-secret"), &["status"]);
    assert!(!plain.success(), "plaintext status: {}", plain.stdout);
    topo.admin_env = vec![(
        "CAIRN_GRPC_TLS_CA".to_string(),
        pki.ca.display().to_string(),
    )];
    let layout = topo.admin(&nodes[0], &["layout", "show"]);
    assert!(
        layout.starts_with("layout version 1, replication 3, 3 node(s)"),
        "{layout}"
    );

    // S3 through the gateway, which reaches the nodes over TLS.
    let s3 = s3_client(
        &format!("http://{}", gateway.addr("s3")),
        &topo.secret("access-key-id"),
        &topo.secret("secret-access-key"),
    );
    s3.create_bucket()
        .bucket("k8s-tls")
        .send()
        .await
        .expect("CreateBucket");
    let body = random_bytes(3 * 1024 * 1024 + 1);
    put_checked(&s3, "k8s-tls", "object", &body).await;
    let got = try_get(&s3, "k8s-tls", "object").await;
    assert!(matches!(&got, Ok(Some(b)) if *b == body), "GET after PUT");
}
