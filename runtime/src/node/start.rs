//! Starting one container of a pod: resolve the image ("pull"), build env and mounts, wipe
//! the ephemeral root, open the log, and hand a [`ContainerSpec`] to the runtime on a task
//! the worker joins.
//!
//! A failure before the instance exists leaves the container waiting with the kubelet's
//! reason (`ErrImagePull`/`ImagePullBackOff`, `CreateContainerConfigError`,
//! `CreateContainerError`) and a `Failed` event, and is retried after `backoff_base`.

use std::time::Instant;

use k8s_openapi::api::core::v1::Container;
use tokio_util::sync::CancellationToken;

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::LifecycleHandler;

use super::attach::Attachable;
use super::config::{quantity_bytes, quantity_millis};
use super::container::Group;
use super::env::{self, PodFacts, Sources};
use super::events::pod_ref;
use super::events::{EventType, container_field_path};
use super::exec::{Sandbox, Target};
use super::lifecycle::{self, Hook};
use super::logs::Stream;
use super::probes::{ProbeState, Prober};
use super::sandbox;
use super::worker::Worker;
use crate::images::{Reference, StandIn, digest_of, stand_in};
use crate::wasm::{ContainerSpec, CpuShare, PodCluster, PodNetwork};

/// How long a container start waits for the node's first list of Services (its service-link
/// env vars), right after the agent starts.
const SERVICES_SYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Where a `wasi:http` handler is served: the first `containerPort`, else `PORT`, else 8080.
fn http_port(container: &Container, env: &[(String, String)]) -> u16 {
    container
        .ports
        .iter()
        .flatten()
        .find_map(|p| u16::try_from(p.container_port).ok().filter(|&p| p != 0))
        .or_else(|| {
            env.iter()
                .rev()
                .find(|(k, _)| k == "PORT")
                .and_then(|(_, v)| v.parse().ok())
        })
        .unwrap_or(8080)
}

/// What a stand-in needs to play its part, unless the container says otherwise: `PORT` (the
/// container's first `containerPort`, else the original's port) and the original's env
/// (where it keeps data).
fn stand_in_env(env: &mut Vec<(String, String)>, stand_in: &StandIn, container: &Container) {
    let declared = container
        .ports
        .iter()
        .flatten()
        .find_map(|p| u16::try_from(p.container_port).ok().filter(|&p| p != 0));
    let port = declared.or(stand_in.port).map(|p| p.to_string());
    let defaults = stand_in
        .env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain(port.map(|p| ("PORT".to_string(), p)));
    for (key, value) in defaults.collect::<Vec<_>>() {
        if !env.iter().any(|(k, _)| *k == key) {
            env.push((key, value));
        }
    }
}

/// Which list of `resources` to read.
#[derive(Clone, Copy)]
enum Kind {
    Request,
    Limit,
}
use Kind::{Limit, Request};

/// A quantity from the container's `resources.requests` or `.limits`.
fn resource<'a>(container: &'a Container, kind: Kind, name: &str) -> Option<&'a str> {
    let resources = container.resources.as_ref()?;
    let list = match kind {
        Request => resources.requests.as_ref()?,
        Limit => resources.limits.as_ref()?,
    };
    list.get(name).map(|q| q.0.as_str())
}

/// Why a container could not be created: the waiting reason and the message.
pub(super) struct Failure {
    pub(super) reason: &'static str,
    pub(super) message: String,
}

pub(super) fn failure(reason: &'static str) -> impl FnOnce(String) -> Failure {
    move |message| Failure { reason, message }
}

impl Worker {
    /// What env and downward-API volumes need to know about this pod on this node.
    pub(super) fn facts(&self) -> PodFacts {
        let c = &self.ctx.config;
        PodFacts {
            pod_ip: self.pod_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            host_ip: c.address.to_string(),
            node_name: c.name.clone(),
            node_cpu_millis: c.cpu_millis,
            node_memory_bytes: c.memory_bytes,
        }
    }

    /// The pod's network identity and policy on this node.
    pub(super) fn network(&self, pod_ip: Ipv4Addr) -> PodNetwork {
        PodNetwork {
            pod_ip,
            allow_external: self.ctx.config.allow_external_network,
            map_low_ports: self.ctx.config.map_low_ports,
        }
    }

    /// The pod's view of the cluster: the node's Services and the pod's DNS names.
    pub(super) fn cluster(&self) -> PodCluster {
        let spec = self.pod.spec.as_ref();
        PodCluster {
            services: self.ctx.services.table(),
            namespace: self.namespace.clone(),
            hostname: spec
                .and_then(|s| s.hostname.clone())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| self.name.clone()),
            subdomain: spec
                .and_then(|s| s.subdomain.clone())
                .filter(|s| !s.is_empty()),
            allow_external_dns: self.ctx.config.allow_external_dns,
        }
    }

    /// Container `name` as the target of exec hooks and probes.
    pub(super) fn target(&self, name: &str) -> Target {
        Target {
            exec: self.ctx.exec.clone(),
            namespace: self.namespace.clone(),
            pod: self.name.clone(),
            container: name.to_string(),
        }
    }

    /// The spec of container `name` in `group`. An ephemeral container has the fields of a
    /// container (the API keeps the same names), so it is read as one.
    pub(super) fn container_spec(&self, group: Group, name: &str) -> Option<Container> {
        let spec = self.pod.spec.as_ref()?;
        let list = match group {
            Group::Init => spec.init_containers.as_deref().unwrap_or_default(),
            Group::Main => &spec.containers,
            Group::Ephemeral => {
                let ephemeral = spec
                    .ephemeral_containers
                    .iter()
                    .flatten()
                    .find(|c| c.name == name)?;
                return serde_json::to_value(ephemeral)
                    .ok()
                    .and_then(|v| serde_json::from_value(v).ok());
            }
        };
        list.iter().find(|c| c.name == name).cloned()
    }

    /// Starts container `index` of `group`.
    pub(super) async fn start(&mut self, group: Group, index: usize) {
        let Some(name) = self.records(group).get(index).map(|r| r.name.clone()) else {
            return;
        };
        let Some(container) = self.container_spec(group, &name) else {
            return;
        };
        let field = Some(container_field_path(&name, group));
        if self.back_off_pull(group, index, container.image.as_deref().unwrap_or_default()) {
            return;
        }
        match self.launch(group, index, &container).await {
            Ok(()) => {
                self.event(
                    field.clone(),
                    EventType::Normal,
                    "Created",
                    format!("Created container: {name}"),
                );
                self.event(
                    field,
                    EventType::Normal,
                    "Started",
                    format!("Started container {name}"),
                );
            }
            Err(Failure { reason, message }) if reason == "ErrImagePull" => {
                tracing::warn!(container = %name, reason, %message, "image not pulled");
                let image = container.image.clone().unwrap_or_default();
                self.event(
                    field.clone(),
                    EventType::Warning,
                    "Failed",
                    format!("Failed to pull image {image:?}: {message}"),
                );
                self.event(
                    field,
                    EventType::Warning,
                    "Failed",
                    format!("Error: {reason}"),
                );
                let now = Instant::now();
                let record = &mut self.records_mut(group)[index];
                let delay = record.backoff.image_delay(record.pull_failures);
                record.pull_backoff_until = Some(now + delay);
                // Shown once, then `ImagePullBackOff` until the next try (`back_off_pull`).
                record.waiting(reason, Some(message), Some(now));
            }
            Err(Failure { reason, message }) => {
                tracing::warn!(container = %name, reason, %message, "container not started");
                if reason != "ErrImageNeverPull" {
                    self.event(
                        field,
                        EventType::Warning,
                        "Failed",
                        format!("Error: {message}"),
                    );
                }
                let retry = Some(Instant::now() + self.ctx.config.backoff_base);
                self.records_mut(group)[index].waiting(reason, Some(message), retry);
            }
        }
    }

    async fn launch(
        &mut self,
        group: Group,
        index: usize,
        container: &Container,
    ) -> Result<(), Failure> {
        let name = container.name.clone();
        let memory_limit = resource(container, Limit, "memory").and_then(quantity_bytes);
        let largest = self.ctx.runtime.engine().config().max_memory_bytes;
        if let Some(limit) = memory_limit.filter(|&l| l > largest) {
            let mib = |b: u64| format!("{}Mi", b.div_ceil(1 << 20));
            return Err(failure("CreateContainerError")(format!(
                "limits.memory {} is more than this node's largest container ({}, set by the \
                 node's --default-memory-limit, which sizes its instance pool)",
                mib(limit),
                mib(largest)
            )));
        }
        let image = self.pull(group, index, container).await?;

        let sources = self
            .env_sources(container)
            .await
            .map_err(failure("CreateContainerConfigError"))?;
        let facts = self.facts();
        let mut env = env::resolve(&self.pod, container, &facts, &sources)
            .map_err(|e| failure("CreateContainerConfigError")(e.to_string()))?;
        if let Some(stand_in) = Reference::parse(container.image.as_deref().unwrap_or_default())
            .ok()
            .as_ref()
            .and_then(stand_in)
        {
            stand_in_env(&mut env, stand_in, container);
        }
        let mounts = sandbox::mounts(container, &self.volumes, self.service_account.as_deref())
            .map_err(|e| failure("CreateContainerConfigError")(e.to_string()))?;
        let pod_ip = self
            .pod_ip
            .ok_or_else(|| failure("CreateContainerError")("the pod has no IP".into()))?;
        let root = self
            .dirs
            .fresh_root(&name)
            .map_err(|e| failure("CreateContainerError")(e.to_string()))?;

        let network = self.network(pod_ip);
        let start = self.records(group)[index].next_start();
        let log = self
            .ctx
            .logs
            .start(&self.namespace, &self.name, &name, start)
            .map_err(|e| failure("CreateContainerError")(e.to_string()))?;

        let argv = env::argv(container, image.short_name(), &env);
        let mut spec = ContainerSpec::new(image, root, pod_ip);
        spec.argv = argv;
        spec.env = env;
        spec.working_dir = container.working_dir.clone().filter(|d| !d.is_empty());
        spec.mounts = mounts;
        spec.network = network;
        spec.cluster = self.cluster();
        spec.memory_limit = memory_limit;
        spec.http_port = http_port(container, &spec.env);
        // An absent request defaults to the limit, as the API server's defaulting does.
        let limit_cpu = resource(container, Limit, "cpu").and_then(quantity_millis);
        spec.cpu = CpuShare {
            request_millis: resource(container, Request, "cpu")
                .and_then(quantity_millis)
                .or(limit_cpu)
                .unwrap_or(0),
            limit_millis: limit_cpu,
        };
        spec.stdout = log.sink(Stream::Stdout);
        spec.stderr = log.sink(Stream::Stderr);
        // `stdin: true`: stdin is a pipe attach sessions write into; the output also goes
        // to them (with `tty: true` stderr joins stdout, as on a terminal).
        let tty = container.tty.unwrap_or(false);
        let attach = container.stdin.unwrap_or(false).then(|| {
            let streams = Attachable::new(
                tty,
                container.stdin_once.unwrap_or(false),
                spec.stdout.clone(),
            );
            spec.stdin = Some(streams.stdin.clone());
            spec.tty = tty;
            spec.stdout = streams.clone();
            if tty {
                spec.stderr = streams.clone();
            }
            streams
        });
        let stop = CancellationToken::new();
        spec.stop = stop.clone();
        // Cancelled when this run ends (exec.remove): its execs and probes stop with it.
        let ended = stop.child_token();
        self.ctx.exec.add(
            &self.namespace,
            &self.name,
            &name,
            Sandbox {
                image: spec.image.clone(),
                env: spec.env.clone(),
                working_dir: spec.working_dir.clone(),
                root: spec.root.clone(),
                mounts: spec.mounts.clone(),
                network,
                cluster: spec.cluster.clone(),
                memory_limit,
                cpu: spec.cpu,
                usage: spec.usage.clone(),
                stop: ended.clone(),
                attach,
            },
        );
        let drain = CancellationToken::new();
        spec.drain = drain.clone();
        let instantiated = spec.instantiated.clone();

        let seed = format!(
            "{}/{name}/{start}/{}",
            self.uid,
            jiff::Timestamp::now().as_nanosecond()
        );
        let container_id = format!(
            "wasm://{}",
            digest_of(seed.as_bytes()).trim_start_matches("sha256:")
        );
        self.ctx.usages.started(
            super::metrics::ContainerKey::new(&self.namespace, &self.name, &name),
            &self.uid,
            spec.usage.clone(),
            spec.root.clone(),
        );
        self.ctx.usages.pod_volumes(
            &self.namespace,
            &self.name,
            self.volumes
                .iter()
                .map(|(volume, dir)| (volume.clone(), dir.host.clone()))
                .collect(),
        );
        let runtime = self.ctx.runtime.clone();
        let handle = self.running.tasks.spawn_on(
            async move { runtime.run(spec).await },
            self.ctx.guests.handle(),
        );
        self.running
            .ids
            .insert(handle.id(), (group, name.clone(), log));
        let probes = ProbeState::new(container);
        let records = self.records_mut(group);
        records[index].started(container_id, stop.clone(), drain, probes.clone());
        if Prober::needed(container) {
            let prober = Prober {
                container: container.clone(),
                target: self.target(&name),
                network,
                state: probes,
                changed: self.probed.clone(),
                events: self.ctx.events.clone(),
                object: pod_ref(&self.pod, Some(container_field_path(&name, group))),
                kill: stop.clone(),
                ended: ended.clone(),
                instantiated: instantiated.clone(),
            };
            tokio::spawn(prober.run());
        }
        let ended_for_hook = ended;
        // ContainerCreating until the instance exists and any postStart hook is done.
        self.records_mut(group)[index].post_start_pending = true;
        let handler = Hook::PostStart.handler(container).cloned();
        self.spawn_post_start(
            handler,
            container.clone(),
            group,
            network,
            stop,
            instantiated,
            ended_for_hook,
        );
        tracing::info!(container = %name, restart = start, "container started");
        Ok(())
    }

    /// Waits for the instance to exist, then runs the `postStart` hook if there is one (the
    /// worker hears of the end through `running.hooks` and shows the container Running); a
    /// failed hook kills the container (restarted per the restart policy), as the kubelet
    /// does.
    #[allow(clippy::too_many_arguments)]
    fn spawn_post_start(
        &mut self,
        handler: Option<LifecycleHandler>,
        container: Container,
        group: Group,
        network: PodNetwork,
        stop: CancellationToken,
        instantiated: CancellationToken,
        ended: CancellationToken,
    ) {
        let events = self.ctx.events.clone();
        let field = Some(container_field_path(&container.name, group));
        let object = pod_ref(&self.pod, field);
        let pod_name = format!("{}_{}({})", self.name, self.namespace, self.uid);
        let timeout = self.grace_period();
        let target = self.target(&container.name);
        self.running.hooks.spawn(async move {
            tokio::select! {
                () = instantiated.cancelled() => {}
                // It never started (or was stopped first): its exit says why.
                () = ended.cancelled() => return (group, container.name),
                () = stop.cancelled() => return (group, container.name),
            }
            let Some(handler) = handler else {
                return (group, container.name);
            };
            let outcome = tokio::select! {
                () = stop.cancelled() => return (group, container.name),
                outcome = lifecycle::run(Hook::PostStart, &handler, &container, network, &target, timeout) => outcome,
            };
            if let Err(message) = outcome {
                let name = &container.name;
                events.emit(
                    object.clone(),
                    EventType::Warning,
                    Hook::PostStart.failed_reason(),
                    format!(
                        "PostStartHook failed for container {name:?} in pod {pod_name:?}: {message}"
                    ),
                );
                events.emit(
                    object,
                    EventType::Normal,
                    "Killing",
                    format!("FailedPostStartHook: stopping container {name}"),
                );
                stop.cancel();
            }
            (group, container.name)
        });
    }

    /// Fetches the ConfigMaps and Secrets the container's env refers to (missing ones are
    /// left out; env resolution decides whether that is an error).
    async fn env_sources(&self, container: &Container) -> Result<Sources, String> {
        let (config_maps, secrets) = env::referenced(container);
        let mut sources = Sources::default();
        for name in config_maps {
            if let Some(cm) = self
                .objects
                .config_map(&name)
                .await
                .map_err(|e| e.to_string())?
            {
                sources.config_maps.insert(name, cm);
            }
        }
        for name in secrets {
            if let Some(secret) = self
                .objects
                .secret(&name)
                .await
                .map_err(|e| e.to_string())?
            {
                sources.secrets.insert(name, secret);
            }
        }
        sources.services = self
            .ctx
            .services
            .for_links(&self.namespace, SERVICES_SYNC_WAIT)
            .await;
        Ok(sources)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stand_ins_get_their_port_and_env_unless_the_container_sets_them() {
        let hpa = crate::images::STAND_INS
            .iter()
            .find(|s| s.image == "registry.k8s.io/hpa-example")
            .unwrap();
        let mut env = Vec::new();
        stand_in_env(&mut env, hpa, &Container::default());
        assert!(env.contains(&("PORT".into(), "80".into())));
        assert!(env.contains(&("BURN_PER_REQUEST".into(), "1000000".into())));

        let declared: Container = serde_json::from_value(serde_json::json!({
            "name": "c", "ports": [{"containerPort": 8080}]
        }))
        .unwrap();
        let mut env = vec![("BURN_PER_REQUEST".to_string(), "5".to_string())];
        stand_in_env(&mut env, hpa, &declared);
        assert_eq!(
            env,
            [
                ("BURN_PER_REQUEST".to_string(), "5".to_string()),
                ("PORT".to_string(), "8080".to_string())
            ]
        );
    }
}
