//! `wasmkube image import|push|ls|rm`: the cluster's image store and other registries.
//!
//! The cluster's image store is the OCI distribution endpoint the API server serves at
//! `/v2/` (controlplane `images/`); nodes pull from it like from any registry. `import`
//! checks a wasm file by compiling it with the nodes' engine (reporting the compile time a
//! node pays once per image) and pushes it there; `push` sends a wasm file to any registry;
//! `ls` and `rm` list and untag what the cluster holds. Images use the wasm OCI artifact
//! layout (`runtime::images::oci`): one `application/wasm` layer, wasip1 modules and wasip2
//! components alike.

use std::path::PathBuf;

use runtime::images::registry::{Registries, RegistryError};
use runtime::images::{ImageName, Reference, oci};
use serde_json::Value;

use crate::client::Cluster;
use crate::error::Error;
use crate::progress::{Progress, human_bytes};

/// `wasmkube image ...`.
#[derive(clap::Args, Debug)]
pub struct ImageArgs {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(clap::Subcommand, Debug)]
enum ImageCommand {
    /// Import a wasm file into the cluster's image store as NAME[:TAG] (compiled first, to
    /// check it runs here); pods then use `image: NAME[:TAG]`.
    Import {
        /// The image name, e.g. `my-node-app:v1` (no tag: `latest`).
        name: String,
        /// A wasip2 component or wasip1 module.
        file: PathBuf,
    },
    /// Push a wasm file to a registry: REF names it (`localhost:5000/app:v1`); a REF without
    /// a registry host goes to the cluster's image store.
    Push {
        /// A wasip2 component or wasip1 module.
        file: PathBuf,
        /// Where to push it.
        reference: String,
        /// Registry user (basic auth).
        #[arg(long, requires = "password")]
        username: Option<String>,
        /// Registry password.
        #[arg(long, env = "WASMKUBE_REGISTRY_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Speak plain HTTP to this registry (loopback registries always are).
        #[arg(long)]
        insecure: bool,
    },
    /// List the images in the cluster's image store.
    #[command(alias = "list")]
    Ls,
    /// Remove images from the cluster's image store (NAME:TAG untags, NAME@DIGEST deletes).
    #[command(alias = "remove")]
    Rm {
        /// Images to remove.
        #[arg(required = true)]
        images: Vec<String>,
    },
}

/// Runs an image command.
pub async fn run(args: ImageArgs, cluster: &Cluster) -> Result<(), Error> {
    match args.command {
        ImageCommand::Import { name, file } => {
            let target = parse_name(&name)?;
            if target.registry.is_some() {
                return Err(Error::Usage(format!(
                    "import takes a name without a registry host (got {name:?}); use \
                     `wasmkube image push {} {name}` for another registry",
                    file.display()
                )));
            }
            push(cluster, &file, &target, None, false, true).await
        }
        ImageCommand::Push {
            file,
            reference,
            username,
            password,
            insecure,
        } => {
            let target = parse_name(&reference)?;
            let auth = username.zip(password);
            push(cluster, &file, &target, auth, insecure, false).await
        }
        ImageCommand::Ls => list(cluster).await,
        ImageCommand::Rm { images } => remove(cluster, &images).await,
    }
}

fn parse_name(written: &str) -> Result<ImageName, Error> {
    match Reference::parse(written) {
        Ok(Reference::Name(name)) => Ok(name),
        Ok(Reference::File(_)) => Err(Error::Usage(format!(
            "{written:?} is a file, not an image name"
        ))),
        Err(e) => Err(Error::Usage(e.to_string())),
    }
}

/// `host:port` of the cluster's API server, where its image store is.
fn cluster_registry(cluster: &Cluster) -> String {
    let url = &cluster.url;
    let host = url.host().unwrap_or("127.0.0.1");
    let port = url
        .port_u16()
        .unwrap_or(if url.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    format!("{host}:{port}")
}

async fn push(
    cluster: &Cluster,
    file: &std::path::Path,
    target: &ImageName,
    auth: Option<(String, String)>,
    insecure: bool,
    check: bool,
) -> Result<(), Error> {
    let shown = file.display().to_string();
    let bytes = tokio::fs::read(file)
        .await
        .map_err(|e| Error::Usage(format!("cannot read {shown}: {e}")))?;
    let Some(wasi) = oci::wasi_target(&bytes) else {
        return Err(Error::Usage(format!(
            "{shown} is not WebAssembly (a wasip2 component or wasip1 module starts with \
             \\0asm); build it with e.g. `cargo build --target wasm32-wasip2`"
        )));
    };
    let size = bytes.len() as u64;
    let bytes = bytes::Bytes::from(bytes);
    if check {
        let progress = Progress::start(format!("compiling {shown} ({})", human_bytes(size)));
        let image = runtime::images::Image::from_bytes(target.to_string(), bytes.to_vec());
        let kind = if wasi == "wasip2" {
            "component"
        } else {
            "module"
        };
        match compile(image).await {
            Ok(()) => {
                let ms = progress.elapsed().as_millis();
                progress.finish(&format!(
                    "compiled {shown} in {ms} ms ({wasi} {kind}; nodes compile it once and cache it)"
                ));
            }
            Err(e) => {
                drop(progress);
                return Err(Error::Usage(format!(
                    "{shown} does not compile for wasmtime, so no node could run it: {e}"
                )));
            }
        }
    }

    let registry = target
        .registry
        .clone()
        .unwrap_or_else(|| cluster_registry(cluster));
    let reference = oci_client::Reference::with_tag(
        registry.clone(),
        target.repository.clone(),
        target.tag_or_latest().to_string(),
    );
    let created = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let artifact = oci::artifact(bytes, &created)
        .ok_or_else(|| Error::Usage(format!("{shown} is not WebAssembly")))?;
    let layer_digest = artifact.manifest.layers[0].digest.clone();
    let insecure_hosts = if insecure {
        vec![registry.clone()]
    } else {
        Vec::new()
    };
    let registries = Registries::new(Some(cluster_registry(cluster)), insecure_hosts);
    let auth = match auth {
        Some((user, password)) => oci_client::secrets::RegistryAuth::Basic(user, password),
        None => oci_client::secrets::RegistryAuth::Anonymous,
    };
    let name = format!("{}:{}", target.repository, target.tag_or_latest());
    let place = if target.registry.is_some() {
        registry.clone()
    } else {
        "the cluster's image store".to_string()
    };
    let progress = Progress::start(format!("pushing {name} to {place}"));
    match registries.push(&reference, artifact, &auth).await {
        Ok(_) => {
            let ms = progress.elapsed().as_millis();
            progress.finish(&format!("pushed {name} to {place} in {ms} ms"));
        }
        Err(e) => {
            drop(progress);
            return Err(Error::Usage(push_error(&e, &place)));
        }
    }
    let pod_image = match &target.registry {
        Some(host) => format!("{host}/{name}"),
        None => name.clone(),
    };
    println!("{pod_image} {layer_digest}");
    if target.registry.is_none() {
        eprintln!("use it in a pod as `image: {pod_image}`");
    }
    Ok(())
}

fn push_error(e: &RegistryError, place: &str) -> String {
    match e {
        RegistryError::Unauthorized(m) => {
            format!("{place} refused the push: {m} (give --username and --password)")
        }
        other => format!("push to {place} failed: {other}"),
    }
}

/// Compiles and links an image the way a node does, without running it.
async fn compile(image: runtime::images::Image) -> Result<(), String> {
    use runtime::wasm::{ContainerRuntime, EngineConfig, WasmEngine};
    let engine = WasmEngine::new(EngineConfig {
        max_instances: 16,
        ..EngineConfig::default()
    })
    .map_err(|e| e.to_string())?;
    let runtime = ContainerRuntime::new(engine, None).map_err(|e| e.to_string())?;
    runtime
        .prepare(&image)
        .await
        .map(|_| ())
        .map_err(|e| format!("{:#}", anyhow::Error::from(e)))
}

/// One GET of the image store, as JSON; `None` on 404.
async fn get_json(
    cluster: &Cluster,
    path: &str,
) -> Result<Option<(Value, http::HeaderMap)>, Error> {
    let request = http::Request::get(path)
        .header(
            http::header::ACCEPT,
            "application/vnd.oci.image.manifest.v1+json, application/json",
        )
        .body(kube::client::Body::empty())
        .map_err(|e| Error::Usage(e.to_string()))?;
    let response = cluster.client.send(request).await.map_err(Error::Request)?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect_bytes()
        .await
        .map_err(Error::Request)?;
    if status == http::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(Error::Usage(format!(
            "the cluster's image store answered {status} to GET {path}: {}",
            String::from_utf8_lossy(&body)
        )));
    }
    let value = serde_json::from_slice(&body)
        .map_err(|e| Error::Usage(format!("GET {path}: not JSON: {e}")))?;
    Ok(Some((value, headers)))
}

fn strings(value: &Value, key: &str) -> Vec<String> {
    value[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

async fn list(cluster: &Cluster) -> Result<(), Error> {
    let catalog = get_json(cluster, "/v2/_catalog")
        .await?
        .map(|(v, _)| strings(&v, "repositories"))
        .unwrap_or_default();
    let mut rows = vec![[
        "REPOSITORY".to_string(),
        "TAG".into(),
        "DIGEST".into(),
        "WASI".into(),
        "SIZE".into(),
    ]];
    for repository in catalog {
        let tags = get_json(cluster, &format!("/v2/{repository}/tags/list"))
            .await?
            .map(|(v, _)| strings(&v, "tags"))
            .unwrap_or_default();
        for tag in tags {
            let Some((manifest, headers)) =
                get_json(cluster, &format!("/v2/{repository}/manifests/{tag}")).await?
            else {
                continue;
            };
            let digest = headers
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let size: u64 = manifest["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l["size"].as_u64())
                .sum();
            let wasi = manifest["annotations"]["io.wasmkube.wasi"]
                .as_str()
                .unwrap_or("-")
                .to_string();
            let short = digest.get(..19).unwrap_or(&digest).to_string();
            rows.push([repository.clone(), tag, short, wasi, human_bytes(size)]);
        }
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
    Ok(())
}

async fn remove(cluster: &Cluster, images: &[String]) -> Result<(), Error> {
    let mut failed = false;
    for written in images {
        let name = parse_name(written)?;
        if name.registry.is_some() {
            return Err(Error::Usage(format!(
                "{written:?} names another registry; rm removes images from the cluster's store"
            )));
        }
        let reference = name
            .digest
            .clone()
            .unwrap_or_else(|| name.tag_or_latest().to_string());
        let path = format!("/v2/{}/manifests/{reference}", name.repository);
        let request = http::Request::delete(&path)
            .body(kube::client::Body::empty())
            .map_err(|e| Error::Usage(e.to_string()))?;
        let response = cluster.client.send(request).await.map_err(Error::Request)?;
        match response.status() {
            s if s.is_success() => match &name.digest {
                Some(d) => println!("Deleted: {}@{d}", name.repository),
                None => println!("Untagged: {}:{reference}", name.repository),
            },
            http::StatusCode::NOT_FOUND => {
                eprintln!("Error: No such image: {written}");
                failed = true;
            }
            s => {
                eprintln!("Error: the cluster's image store answered {s} removing {written}");
                failed = true;
            }
        }
    }
    if failed {
        Err(Error::AlreadyReported)
    } else {
        Ok(())
    }
}
